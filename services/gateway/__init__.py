"""The gateway: authentication, role checks, rate limits and routing to the platform's services."""
