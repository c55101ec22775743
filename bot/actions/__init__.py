"""Custom actions of the Linli bot (rasa_sdk). They reach the app only over its HTTP API."""
