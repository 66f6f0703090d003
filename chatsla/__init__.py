"""chatsla: live TikTok Shop 24 h reply-rate engine (see README.md and ../shared/RULES.md)."""

__version__ = "0.1.0"
