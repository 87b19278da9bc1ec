"""MANSCDP bodies as bytes on one side and a small case-insensitive tree on the other.

Reading: pick the charset (the declaration lies often), repair what devices get wrong (bare ``&``,
control characters, trailing NULs), refuse DTDs outright (no entity expansion, no external
fetches, no XML bombs), parse strictly with lxml and fall back to its recovering parser. The
result is a tree of :class:`Node` whose lookups ignore case, because devices write ``DeviceId``,
``Cmdtype`` or ``deviceList`` as they please.

Writing: a tiny element builder serialised by hand, so the declaration and line endings are
exactly what devices of the 2016 edition expect, in the charset the caller asks for.
"""

from __future__ import annotations

import codecs
import importlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from xueliang.gb28181.errors import ParseError

# lxml ships no type information; everything it returns stays inside this module.
_etree: Any = importlib.import_module("lxml.etree")

MAX_BODY_BYTES = 2 * 1024 * 1024  # a catalogue page is a few KiB; a MESSAGE is never this big

_GB_FAMILY = frozenset(
    {"gb2312", "gbk", "gb18030", "cp936", "ms936", "x-gbk", "euc-cn", "hz-gb-2312"}
)
_UTF8_NAMES = frozenset({"utf-8", "utf8"})
_DECLARED = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']?([A-Za-z0-9_.:\-]{1,40})""")
_DECLARATION = re.compile(r"^\s*<\?xml.*?\?>", re.DOTALL)
_DTD = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
# Any & that does not start one of the five predefined entities or a character reference.
_BARE_AMP = re.compile(r"&(?!(?:amp|lt|gt|quot|apos|#[0-9]{1,7}|#x[0-9A-Fa-f]{1,6});)")
# Lone surrogates (from str input or an escape codec) are no characters XML or UTF-8 can carry.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@dataclass(frozen=True)
class DecodedText:
    text: str
    encoding: str  # the charset the body was read as: "GB2312", "UTF-8", "GB18030", ...
    declared: str | None  # what the declaration claimed, upper case, if anything
    lossy: bool  # some bytes could not be decoded and were replaced


def _canonical(name: str) -> str:
    return name.upper().replace("_", "-")


def decode_bytes(data: bytes) -> DecodedText:
    """The text of a body, with the charset it was written in.

    Order: a body that is valid UTF-8 with multi-byte sequences is UTF-8 whatever it declares,
    because GB-encoded Chinese is almost never valid UTF-8 while UTF-8 Chinese often decodes as
    (wrong) GB18030 without an error; so the declared GB charset cannot expose that lie, UTF-8
    can. Otherwise the declared charset, then UTF-8, then GB18030 (a superset of GB2312 and GBK).
    """
    if len(data) > MAX_BODY_BYTES:
        raise ParseError(f"MANSCDP body of {len(data)} bytes is over the {MAX_BODY_BYTES} limit")
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
        return DecodedText(data.decode("utf-8", errors="replace"), "UTF-8", "UTF-8", False)
    match = _DECLARED.match(data[:200])
    declared = _canonical(match[1].decode("ascii")) if match else None
    if data.isascii():
        return DecodedText(data.decode("ascii"), declared or "UTF-8", declared, False)
    try:
        utf8 = data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        if declared is None or declared.lower() not in _GB_FAMILY or _plausible(utf8):
            return DecodedText(utf8, "UTF-8", declared, False)
        # Declared GB and valid UTF-8, but read as UTF-8 it is not Chinese (short GB strings
        # such as C2 A1 are valid UTF-8): believe the declaration when GB makes sense of it.
        try:
            gb = data.decode("gb18030")
        except UnicodeDecodeError:
            return DecodedText(utf8, "UTF-8", declared, False)
        return DecodedText(gb if _plausible(gb) else utf8, declared, declared, False)
    candidates: list[tuple[str, str]] = []
    if declared is not None and declared.lower() not in _UTF8_NAMES:
        codec = "gb18030" if declared.lower() in _GB_FAMILY else declared.lower()
        candidates.append((codec, declared))
    candidates.append(("gb18030", "GB18030"))
    for codec, name in candidates:
        try:
            # The GB family is read as GB18030, which decodes every GB2312 and GBK byte string.
            text = data.decode(codec)
        except (UnicodeError, LookupError):  # ("undefined" raises a plain UnicodeError)
            continue
        return DecodedText(text, name, declared, False)
    return DecodedText(data.decode("gb18030", errors="replace"), "GB18030", declared, True)


# Characters Chinese device text is made of beyond ASCII: CJK ideographs and punctuation,
# full-width forms, general punctuation, circled and Roman numerals, the middle dot.
_CHINESE_TEXT = re.compile(
    "[\x00-\x7f\u00b7\u00d7\u2000-\u206f\u2160-\u217f\u2460-\u24ff\u3000-\u303f"
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]*"
)


def _plausible(text: str) -> bool:
    return _CHINESE_TEXT.fullmatch(text) is not None


@dataclass
class Node:
    """An element: ``name`` is the lower-case local name used for every lookup."""

    tag: str
    text: str = ""
    attributes: dict[str, str] = field(default_factory=dict)  # keys lower case
    children: list[Node] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.tag.lower()

    def child(self, name: str) -> Node | None:
        wanted = name.lower()
        return next((c for c in self.children if c.name == wanted), None)

    def children_named(self, name: str) -> Iterator[Node]:
        wanted = name.lower()
        return (c for c in self.children if c.name == wanted)

    def text_of(self, name: str) -> str | None:
        """The stripped text of the first child called ``name``; None when absent or empty."""
        node = self.child(name)
        if node is None:
            return None
        return node.text or None

    def walk(self) -> Iterator[Node]:
        stack: list[Node] = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))


@dataclass(frozen=True)
class Document:
    root: Node
    text: str  # the decoded body (after repairs)
    encoding: str
    repaired: bool  # characters were fixed, bytes replaced, or the recovering parser was needed


# XML 1.0 (fifth edition) Name productions, so what the writer accepts a parser accepts too.
_NAME_START = (
    "A-Z_a-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u02ff\u0370-\u037d\u037f-\u1fff\u200c\u200d"
    "\u2070-\u218f\u2c00-\u2fef\u3001-\ud7ff\uf900-\ufdcf\ufdf0-\ufffd\U00010000-\U000effff"
)
_NAME = re.compile(f"[{_NAME_START}][{_NAME_START}:\\-.0-9\u00b7\u0300-\u036f\u203f\u2040]*")


def is_element_name(tag: str) -> bool:
    return _NAME.fullmatch(tag) is not None


def _local(tag: str) -> str:
    # "{namespace}Name" from a stray xmlns, or "prefix:Name" the recovering parser keeps; a
    # prefix is dropped only when what remains is still a name.
    name = tag.rsplit("}", 1)[-1]
    local = name.rsplit(":", 1)[-1]
    return local if is_element_name(local) else name


def _to_nodes(element: Any) -> Node:
    root = Node(_local(str(element.tag)))
    stack: list[tuple[Any, Node]] = [(element, root)]
    while stack:
        source, node = stack.pop()
        node.text = (source.text or "").strip()
        node.attributes = {_local(str(k)).lower(): str(v).strip() for k, v in source.attrib.items()}
        for child in source:
            if not isinstance(child.tag, str):
                continue  # comments and processing instructions
            tag = _local(child.tag)
            if not is_element_name(tag):
                continue  # only the recovering parser makes these, from broken markup
            child_node = Node(tag)
            node.children.append(child_node)
            stack.append((child, child_node))
    return root


def _parser(recover: bool) -> Any:
    return _etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        recover=recover,
    )


def parse_document(data: bytes | str) -> Document:
    if isinstance(data, str):
        decoded = DecodedText(data, "UTF-8", None, False)
        if len(data) > MAX_BODY_BYTES:
            raise ParseError(f"MANSCDP body of {len(data)} characters is over the limit")
    else:
        decoded = decode_bytes(data)
    text = decoded.text.lstrip("\ufeff")
    # Control characters first (NULs must not hide a declaration or a DTD), then the
    # declaration: lxml is handed UTF-8 and must not read another encoding from it.
    cleaned = _DECLARATION.sub("", _CONTROL.sub("", text), count=1)
    repaired = _BARE_AMP.sub("&amp;", cleaned).rstrip()
    # Trailing NULs (C strings sent with their terminator) are too common to count as repairs.
    as_sent = _DECLARATION.sub("", text.rstrip("\x00"), count=1).rstrip()
    changed = decoded.lossy or repaired != as_sent
    # Checked on exactly what lxml will see.
    if _DTD.search(repaired):
        # MANSCDP never uses a DTD; refusing it removes entity expansion and external fetches.
        raise ParseError("MANSCDP body carries a DTD or entity declaration; refused")
    if not repaired.strip():
        raise ParseError("MANSCDP body is empty")
    raw = repaired.encode("utf-8")
    element: Any = None
    try:
        element = _etree.fromstring(raw, _parser(recover=False))
    except _etree.XMLSyntaxError as strict_error:
        try:
            element = _etree.fromstring(raw, _parser(recover=True))
        except _etree.XMLSyntaxError:
            element = None
        if element is None:
            raise ParseError(f"MANSCDP body is not XML: {strict_error}") from None
        changed = True
    if element is None or not isinstance(element.tag, str):
        raise ParseError("MANSCDP body has no root element")
    return Document(_to_nodes(element), repaired, decoded.encoding, changed)


# ---------------------------------------------------------------------------------------------
# Writing


@dataclass
class Element:
    tag: str
    text: str | None = None
    children: list[Element] = field(default_factory=list)
    attributes: dict[str, str] = field(default_factory=dict)

    def add(self, tag: str, value: object | None) -> None:
        """Append a leaf when the value is set; None means the field is left out."""
        if value is None:
            return
        self.children.append(Element(tag, _text(value)))

    def append(self, element: Element) -> Element:
        self.children.append(element)
        return element


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


# A carriage return is written as a reference: a parser turns a literal one into a line feed.
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\r": "&#13;"})


def _write(element: Element, out: list[str]) -> None:
    attributes = "".join(f' {k}="{v.translate(_ESCAPES)}"' for k, v in element.attributes.items())
    if element.children:
        out.append(f"<{element.tag}{attributes}>\r\n")
        for child in element.children:
            _write(child, out)
        out.append(f"</{element.tag}>\r\n")
    else:
        text = _CONTROL.sub("", element.text or "").translate(_ESCAPES)
        out.append(f"<{element.tag}{attributes}>{text}</{element.tag}>\r\n")


def serialise(root: Element, encoding: str = "GB2312") -> bytes:
    """The body in ``encoding``; characters it cannot carry become character references."""
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ValueError(f"unknown encoding {encoding!r}") from None
    out = [f'<?xml version="1.0" encoding="{encoding}"?>\r\n']
    _write(root, out)
    return "".join(out).encode(encoding, errors="xmlcharrefreplace")


def fragment(element: Element) -> str:
    """One element as XML text, without a declaration (a block passed through as it is)."""
    out: list[str] = []
    _write(element, out)
    return "".join(out).replace("\r\n", "\n").strip()


def element_from_node(node: Node) -> Element:
    """A read element as one to write again (attribute names come back in lower case)."""
    root = Element(node.tag, node.text or None, attributes=dict(node.attributes))
    stack: list[tuple[Node, Element]] = [(node, root)]
    while stack:
        source, target = stack.pop()
        for child in source.children:
            built = Element(child.tag, child.text or None, attributes=dict(child.attributes))
            target.children.append(built)
            stack.append((child, built))
    return root


MAX_FRAGMENT_CHARS = 64 * 1024


def element_from_xml(text: str) -> Element:
    """One element given as XML text (by an operator: a configuration block to pass through).

    ValueError when it is not a single well-formed element; DTDs and entity declarations are
    refused, as in bodies from devices. Names and attributes keep their case; text beside child
    elements (mixed content) is dropped, since MANSCDP has none.
    """
    if len(text) > MAX_FRAGMENT_CHARS:
        raise ValueError(f"the XML is over {MAX_FRAGMENT_CHARS} characters")
    cleaned = _DECLARATION.sub("", text.lstrip("\ufeff"), count=1).strip()
    if _DTD.search(cleaned):
        raise ValueError("the XML carries a DTD or entity declaration")
    if _CONTROL.search(cleaned):
        raise ValueError("the XML contains control characters")
    if not cleaned:
        raise ValueError("the XML is empty")
    try:
        source: Any = _etree.fromstring(cleaned.encode("utf-8"), _parser(recover=False))
    except _etree.XMLSyntaxError as exc:
        raise ValueError(f"not well-formed XML: {exc}") from None
    root = _element_of(source)
    stack: list[tuple[Any, Element]] = [(source, root)]
    while stack:
        node, target = stack.pop()
        for child in node:
            if not isinstance(child.tag, str):
                continue
            built = _element_of(child)
            target.children.append(built)
            stack.append((child, built))
    return root


def _element_of(source: Any) -> Element:
    tag = str(source.tag)
    if tag.startswith("{") or not is_element_name(tag):
        raise ValueError(f"not a plain element name: {tag[:40]!r}")
    attributes = {str(k): str(v) for k, v in source.attrib.items()}
    if any(k.startswith("{") or not is_element_name(k) for k in attributes):
        raise ValueError(f"element <{tag}> has an attribute with a namespace or a bad name")
    has_children = any(isinstance(c.tag, str) for c in source)
    text = None if has_children else ((source.text or "").strip() or None)
    return Element(tag, text, attributes=attributes)
