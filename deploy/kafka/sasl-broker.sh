#!/bin/sh
# A single-node Apache Kafka (KRaft) whose clients must authenticate with SASL/SCRAM-SHA-512: the `sasl`
# profile of docker-compose.yaml, for trying notify the way it connects to a managed Kafka (MSK, Confluent
# Cloud, Aiven, Redpanda Cloud). Runs in the apache/kafka image as its entrypoint.
#
# SCRAM users live in the cluster's metadata; in KRaft mode the first ones are written when the storage is
# formatted (`kafka-storage format --add-scram`), so this script formats an empty volume itself instead of
# leaving it to the image. Two users: `admin` (the broker's own listener login, and the healthcheck's) and
# `notify` (the API and worker, NOTIFY_KAFKA_SASL_USERNAME / NOTIFY_KAFKA_SASL_PASSWORD).
#
# Environment: CLUSTER_ID (a base64url UUID), KAFKA_ADMIN_PASSWORD, KAFKA_SASL_PASSWORD; KAFKA_HOME,
# KAFKA_CONFIG_DIR and KAFKA_DATA_DIR default to the image's layout (tests point them elsewhere).
set -eu

: "${CLUSTER_ID:?}" "${KAFKA_ADMIN_PASSWORD:?}" "${KAFKA_SASL_PASSWORD:?}"
home=${KAFKA_HOME:-/opt/kafka}
config=${KAFKA_CONFIG_DIR:-/tmp}/server.properties
data=${KAFKA_DATA_DIR:-/var/lib/kafka/data}

cat > "$config" <<PROPERTIES
node.id=1
process.roles=broker,controller
controller.quorum.voters=1@localhost:9093
controller.listener.names=CONTROLLER
listeners=SASL_PLAINTEXT://:9096,CONTROLLER://localhost:9093
advertised.listeners=SASL_PLAINTEXT://kafka-sasl:9096
listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
inter.broker.listener.name=SASL_PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="${KAFKA_ADMIN_PASSWORD}";
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.dirs=${data}
PROPERTIES

# What the healthcheck connects with.
cat > "${KAFKA_CONFIG_DIR:-/tmp}/client.properties" <<PROPERTIES
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="${KAFKA_ADMIN_PASSWORD}";
PROPERTIES

if [ ! -f "$data/meta.properties" ]; then
    "$home/bin/kafka-storage.sh" format --cluster-id "$CLUSTER_ID" --config "$config" \
        --add-scram "SCRAM-SHA-512=[name=admin,password=${KAFKA_ADMIN_PASSWORD}]" \
        --add-scram "SCRAM-SHA-512=[name=notify,password=${KAFKA_SASL_PASSWORD}]"
fi
exec "$home/bin/kafka-server-start.sh" "$config"
