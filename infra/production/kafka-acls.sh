#!/bin/sh
# The SCRAM users and ACLs of a production Kafka (docs/operations.md#credentials-and-tls). Run once per cluster,
# and again after a password change (re-adding a SCRAM credential replaces it; ACLs are idempotent), from a host
# with Kafka's bin/ on PATH, as a super user:
#   KAFKA_ADMIN_CONFIG=admin.properties BOOTSTRAP=kafka1.internal:9092 \
#   API_PASSWORD=... STREAMS_PASSWORD=... OPS_PASSWORD=... sh infra/production/kafka-acls.sh
# admin.properties logs the super user in (the brokers' own user, or one listed in super.users):
#   security.protocol=SASL_SSL
#   sasl.mechanism=SCRAM-SHA-512
#   sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="photos-broker" password="...";
#   ssl.truststore.location=/etc/kafka/tls/ca.p12
#   ssl.truststore.password=...
# With StandardAuthorizer and allow.everyone.if.no.acl.found=false (kafka-broker.properties) a principal may do
# only what is granted here. Three principals, each set as PHOTOS_KAFKA_USERNAME/PASSWORD of its processes:
#   photos-api      the API (photos-api): publishes events
#   photos-streams  the stream workers (photos-streams): consume the topics in their group, dead-letter events
#   photos-ops      photos-migrate (creates the topics) and photos-replay-dead (reads dead letters, sends back)
set -eu

: "${BOOTSTRAP:?the brokers, host:port}"
: "${KAFKA_ADMIN_CONFIG:?a client properties file that logs in as a super user}"
PREFIX="${PHOTOS_KAFKA_TOPIC_PREFIX:-photos.}"       # every topic of the project starts with it
APP_ID="${PHOTOS_STREAMS_APP_ID:-photos-streams}"    # the workers' consumer group and Faust's internal topics
MECHANISM=SCRAM-SHA-512

user() {  # user <name> <password>: its SCRAM credential (KRaft keeps it in the metadata log)
    kafka-configs.sh --bootstrap-server "$BOOTSTRAP" --command-config "$KAFKA_ADMIN_CONFIG" --alter \
        --entity-type users --entity-name "$1" --add-config "$MECHANISM=[password=$2]"
}

allow() {  # allow <principal> <kafka-acls resource and operation arguments...>
    principal="$1"; shift
    kafka-acls.sh --bootstrap-server "$BOOTSTRAP" --command-config "$KAFKA_ADMIN_CONFIG" --add \
        --allow-principal "User:$principal" "$@"
}

user photos-api "${API_PASSWORD:?}"
user photos-streams "${STREAMS_PASSWORD:?}"
user photos-ops "${OPS_PASSWORD:?}"

# The API publishes every event (app/events.py) with acks=all and idempotence. Since Kafka 3.0 an idempotent
# producer needs Write on its topics only (no IdempotentWrite on the cluster).
allow photos-api --operation Write --operation Describe --topic "$PREFIX" --resource-pattern-type prefixed

# The stream workers read every topic in their group, and write dead letters to <topic>.dead (creating one
# that photos-migrate did not: Create on the prefix, as prefixes cannot name a suffix).
allow photos-streams --operation Read --operation Write --operation Describe --operation Create \
    --topic "$PREFIX" --resource-pattern-type prefixed
allow photos-streams --operation Read --group "$APP_ID"
# Faust's own topics, named after the app id (its partition assignor's <app id>-__assignor-__leader, and the
# changelogs of tables if an agent ever keeps one): created, written and read by the workers.
allow photos-streams --operation Create --operation Read --operation Write --operation Describe \
    --operation DescribeConfigs --topic "$APP_ID-" --resource-pattern-type prefixed

# photos-migrate creates the topics and their dead-letter topics; photos-replay-dead reads the dead letters in
# its own group and sends them back to their topics.
allow photos-ops --operation Create --operation Describe --operation DescribeConfigs --operation Read \
    --operation Write --topic "$PREFIX" --resource-pattern-type prefixed
allow photos-ops --operation Read --group "$APP_ID-dead-replay"

kafka-acls.sh --bootstrap-server "$BOOTSTRAP" --command-config "$KAFKA_ADMIN_CONFIG" --list
