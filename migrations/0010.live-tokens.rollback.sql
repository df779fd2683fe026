DROP TABLE live_tokens;
