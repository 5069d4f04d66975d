"""Process-wide settings for the app layer."""
