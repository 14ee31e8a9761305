"""Security guards for outbound requests made by the gateway."""
