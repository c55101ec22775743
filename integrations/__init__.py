"""Outside systems (WeChat, Twilio, Rasa) behind small interfaces; this package never imports `app`."""
