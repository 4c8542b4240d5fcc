"""How the outside reaches the gateway: the FastAPI app and its routes."""
