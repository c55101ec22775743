"""Webhooks of the channels residents write from: the WeChat official account and the SMS hotline."""
