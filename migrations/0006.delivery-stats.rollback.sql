DROP TRIGGER delivery_stats_on_status ON notifications;
DROP FUNCTION delivery_stats_on_status();
DROP TABLE delivery_stats;
DROP FUNCTION delivery_latency_bounds_ms();
