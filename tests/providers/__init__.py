"""Loopback fakes of the remote inference providers, one small aiohttp app per provider.

Each fake speaks its provider's documented request/response format, checks the auth header
and body the sidecar sends (a bad request is answered 400 in the provider's error shape and
recorded in ``problems``) and can be scripted with replies (errors, delays, garbage, streams
cut short) to exercise the shared HTTP behaviour.
"""
