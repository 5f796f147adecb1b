"""patientgen: realistic synthetic military casualties in durable background jobs."""

__version__ = "0.1.0"
