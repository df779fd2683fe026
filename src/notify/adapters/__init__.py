"""Adapters: implementations of notify.ports on aiohttp, asyncpg, aiokafka and HTTP providers."""
