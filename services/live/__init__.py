"""Live service: sequences play events per game and fans them out to WebSocket clients."""
