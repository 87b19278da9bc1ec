"""Xueliang (雪亮): public-security video networking and application platform."""

__version__ = "0.1.0"
