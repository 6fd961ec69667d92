"""Kafka settings: replication chosen from the cluster, TLS/SASL options for managed Kafka."""

from __future__ import annotations

from pydantic import SecretStr

from zapstream_platform.settings import KafkaSettings
from zapstream_platform.topics import new_topic, replication_for


def test_replication_follows_the_cluster_unless_configured() -> None:
    auto = KafkaSettings()
    assert replication_for(auto, 1) == (1, 1)  # the single dev node
    assert replication_for(auto, 3) == (3, 2)  # survives one broker
    assert replication_for(auto, 5) == (3, 2)
    assert replication_for(KafkaSettings(replication_factor=3, min_insync_replicas=2), 1) == (3, 2)
    topic = new_topic(auto, "t", -1, brokers=3)
    assert topic.replication_factor == 3 and topic.topic_configs["min.insync.replicas"] == "2"


def test_kafka_client_options_carry_tls_and_sasl() -> None:
    plain = KafkaSettings().client_options()
    assert plain == {"bootstrap_servers": "127.0.0.1:19092", "security_protocol": "PLAINTEXT"}
    managed = KafkaSettings(bootstrap_servers="b-1.example:9096", security_protocol="SASL_SSL",
                            sasl_mechanism="SCRAM-SHA-512", sasl_username="u",
                            sasl_password=SecretStr("p")).client_options()
    assert managed["ssl_context"] is not None and managed["sasl_mechanism"] == "SCRAM-SHA-512"
    assert managed["sasl_plain_username"] == "u" and managed["sasl_plain_password"] == "p"
    assert "s3cr3t-pw" not in repr(KafkaSettings(sasl_password=SecretStr("s3cr3t-pw")))  # never in logs or reprs
