"""chatsla: live TikTok Shop 24 h reply-rate engine (see README.md; the rules it computes are docs/rules.md)."""

__version__ = "0.1.0"
