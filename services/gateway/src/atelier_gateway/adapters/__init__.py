"""The gateway's adapters: JetStream for commands, SQL for read models, HMAC for download links."""
