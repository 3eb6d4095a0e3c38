"""OpenAI-compatible HTTP API: routes, request parsing, response shapes, the OpenAPI document, chat templates."""
