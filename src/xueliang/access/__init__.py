"""Who may do what, where: users, roles, area scopes, tokens, and the audit chain."""
