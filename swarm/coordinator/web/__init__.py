"""The coordinator's HTTP side: the aiohttp server (dashboard, status, metrics, OpenAI API) and its error mapping."""
