"""The hotline: calls, voicemail and missed calls become tickets."""
