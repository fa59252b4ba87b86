"""Send WhatsApp messages through DecisionTelecom's WhatsApp API, and track every status."""

__version__ = "0.1.0"
