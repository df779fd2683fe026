DROP INDEX notifications_provider_message;
DROP TABLE delivery_receipts;
