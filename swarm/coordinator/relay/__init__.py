"""The relay: runs sent to workers over one stream each, their tokens saved in Redis and passed to the request."""
