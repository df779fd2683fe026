DROP TABLE outbox;
DROP TABLE notifications;
