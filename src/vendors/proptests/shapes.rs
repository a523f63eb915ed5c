//! Each vendor's item and page envelope as templates (see [`super::strategies`]):
//! the field names the vendor code reads, from its documentation and the
//! real payloads, with the kind of value each holds.

use serde_json::{Value, json};

pub(super) fn canaryguard_item() -> Value {
    json!({
        "id": "$id", "token_id": "$id", "token_name": "$text",
        "token_type": "$one:http|dns|aws_keys|crypto_eth|crypto_btc",
        "triggered_at": "$time", "source_ip": "$ip",
        "geo": { "city": "$text", "region": "$text", "country": "$text", "lat": "$float", "lon": "$float" },
        "user_agent": "$text", "headers": { "referer": "$text" }, "reviewed": "$bool",
        "metadata": { "matched_address": "$text" }
    })
}

pub(super) fn canaryguard_page() -> Value {
    json!({
        "data": [canaryguard_item()],
        "meta": { "page": "$int", "limit": "$int", "total": "$int" },
        "?error": { "code": "$text", "message": "$text" }
    })
}

fn id_name() -> Value {
    json!({ "id": "$int", "name": "$text" })
}

pub(super) fn catchpoint_item() -> Value {
    json!({
        "id": "$id", "reportTime": "$time", "processingTimestamp": "$time", "startTime": "$time",
        "level": { "id": "$int", "name": "$one:Warning|Critical|Information|Improved" },
        "test": id_name(), "testPath": ["$text"], "testPathStyled": "$text",
        "testUrl": "$text", "testSmartboardUrl": "$text",
        "testType": id_name(), "alertType": id_name(), "alertSubtype": id_name(),
        "triggerType": id_name(), "operationType": id_name(),
        "warningTrigger": "$float", "criticalTrigger": "$float", "durationInSecond": "$int",
        "node": id_name(), "acknowledgedBy": id_name(),
        "labels": [{ "color": "$text", "id": "$int", "name": "$text", "values": ["$text"] }]
    })
}

pub(super) fn catchpoint_page() -> Value {
    let period = json!({ "minute": "$int", "hour": "$int", "day": "$int" });
    json!({
        "data": { "alerts": [catchpoint_item()], "hasMore": "$bool", "next": "$text", "previous": "$text" },
        "completed": "$bool",
        "?errors": [{ "id": "$text", "message": "$text" }],
        "traceId": "$text",
        "usageLimits": { "clientId": "$int", "limits": period, "runs": period, "exceededMessage": "$text" }
    })
}

fn rule_keys() -> Value {
    json!([{
        "key": "$one:source_ip|destination_ip|account|user|hostname|url|geoip_city|geoip_country_code|result",
        "values": ["$text"]
    }])
}

pub(super) fn rapid7_alert() -> Value {
    json!({
        "rrn": "$id", "?id": "$id", "version": "$int",
        "created_at": "$time", "?created_time": "$time", "updated_at": "$time", "alerted_at": "$time",
        "first_event_time": "$time", "external_source": "$text", "?alert_source": "$text",
        "organization": {
            "id": "$id", "name": "$text", "region": "$text", "customer_name": "$text", "customer_id": "$id"
        },
        "title": "$text", "type": "$text", "?alert_type": "$text", "?alert_type_description": "$text",
        "rule": { "rrn": "$text", "mitre_tcodes": ["$one:T1110|t1059.001|T1078|Execution|T10|T1059.1"] },
        "?detection_rule_rrn": { "rule_name": "$text", "rule_rrn": "$text" },
        "rule_matching_keys": rule_keys(), "rule_keys_of_interest": rule_keys(),
        "priority": "$one:CRITICAL|HIGH|MEDIUM|LOW|INFO|UNMAPPED",
        "status": "$one:OPEN|INVESTIGATING|WAITING|CLOSED",
        "disposition": "$text", "responsibility": "$text", "investigation_rrn": "$text", "tags": ["$text"]
    })
}

pub(super) fn rapid7_alerts_page() -> Value {
    json!({
        "alerts": [rapid7_alert()],
        "metadata": { "is_last_index": "$bool", "total_items": "$int", "size": "$int", "index": "$int" },
        "?region_failures": ["$text"]
    })
}

pub(super) fn rapid7_investigation() -> Value {
    json!({
        "rrn": "$id", "?id": "$id", "organization_id": "$id", "title": "$text",
        "source": "$one:ALERT|MANUAL|HUNT", "status": "$one:OPEN|INVESTIGATING|WAITING|CLOSED",
        "priority": "$one:CRITICAL|HIGH|MEDIUM|LOW|UNSPECIFIED", "disposition": "$text",
        "responsibility": "$text", "assignee": { "name": "$text", "email": "$text" },
        "created_time": "$time", "last_accessed": "$time",
        "first_alert_time": "$time", "latest_alert_time": "$time", "tags": ["$text"]
    })
}

pub(super) fn rapid7_investigations_page() -> Value {
    json!({
        "data": [rapid7_investigation()],
        "metadata": { "total_pages": "$int", "total_data": "$int", "size": "$int", "index": "$int" },
        "?message": "$text"
    })
}

pub(super) fn red_canary_item() -> Value {
    json!({
        "type": "$one:Detection", "id": "$id",
        "attributes": {
            "headline": "$text", "confirmed_at": "$time", "summary": "$text",
            "severity": "$one:low|medium|high|critical",
            "last_activity_seen_at": "$time", "last_acknowledged_at": "$time",
            "last_remediated_status": {
                "remediation_state": "$one:remediated|not_remediated_false_positive|not_remediated",
                "reason": "$text", "marked_at": "$time"
            },
            "classification": { "superclassification": "$text", "subclassification": ["$text"] },
            "time_of_occurrence": "$time"
        },
        "hostname": "$text", "username": "$text",
        "relationships": { "affected_endpoint": { "data": { "id": "$id", "network_addresses": ["$ip"] } } },
        "links": { "self": { "href": "$link" } }
    })
}

pub(super) fn red_canary_page() -> Value {
    json!({
        "data": [red_canary_item()],
        "links": { "self": "$link", "next": "$link" },
        "meta": { "api_version": "$text", "total_items": "$int" },
        "?errors": [{ "detail": "$text", "title": "$text" }]
    })
}

fn thinkst_event() -> Value {
    json!({
        "timestamp": "$time", "src_host": "$ip", "type": "$text",
        "USERNAME": "$text", "USER": "$text", "HOSTNAME": "$text", "USERAGENT": "$text",
        "headers": { "User-Agent": "$text" }, "url": "$text",
        "geoip": {
            "ip": "$ip", "city": "$text", "region": "$text", "country_code": "$text",
            "country": "$text", "latitude": "$float", "longitude": "$float"
        }
    })
}

fn thinkst_description() -> Value {
    json!({
        "acknowledged": "$bool", "created": "$time", "created_std": "$time",
        "description": "$text", "name": "$text", "memo": "$text",
        "dst_host": "$ip", "dst_host_public_ip": "$ip", "dst_port": "$int",
        "src_host": "$ip", "src_host_reverse": "$text", "src_port": "$int",
        "events_count": "$int", "logtype": "$one:1004|4002|5003|16006|3000|99999",
        "node_id": "$id", "flock_id": "$text", "events": [thinkst_event()]
    })
}

pub(super) fn thinkst_item() -> Value {
    json!({
        "id": "$id", "hash_id": "$text", "summary": "$text", "updated_id": "$int",
        "updated": "$time", "updated_std": "$time", "updated_time": "$time",
        "description": thinkst_description()
    })
}

pub(super) fn thinkst_page() -> Value {
    json!({
        "?result": "$one:error|success", "?message": "$text",
        "incidents": [thinkst_item()],
        "cursor": { "next": "$text", "prev": "$text" },
        "max_updated_id": "$int"
    })
}
