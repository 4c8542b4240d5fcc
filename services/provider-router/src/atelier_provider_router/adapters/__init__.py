"""Provider adapters: each module speaks to one kind of provider through the port in app.ports."""
