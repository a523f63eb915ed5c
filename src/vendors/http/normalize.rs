//! An item → an event, field by field as the definition says.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde_json::Value;

use crate::event::{
    Entities, Event, Host, IpEntity, Role, SCHEMA_VERSION, Severity, Status, UrlEntity, User, event_id,
};
use crate::vendors::fields::parse_lenient_time;
use crate::vendors::{NormalizeContext, NormalizeError, Normalized, Vendor};

use super::HttpSource;
use super::definition::{FieldsSpec, IncrementalSpec, Spec, TextExpr, ValueMap};
use super::location::{Location, each_text, text_of};
use super::template::TimeFormat;

/// The item's native id, `None` when it has none (a hollow item).
pub(super) fn native_id(fields: &FieldsSpec, item: &Value) -> Option<String> {
    eval(&fields.id, item).into_iter().next()
}

/// The values of an expression over `item` (a location may hold a list).
fn eval(expr: &TextExpr, item: &Value) -> Vec<String> {
    match expr {
        TextExpr::At(l) => l.get(item).map(each_text).unwrap_or_default(),
        TextExpr::Template(t) => t.render(item).filter(|s| !s.trim().is_empty()).into_iter().collect(),
        TextExpr::TemplateOr(t, default) => {
            vec![t.render(item).filter(|s| !s.trim().is_empty()).unwrap_or_else(|| default.clone())]
        }
        TextExpr::LatestOf(list) => list
            .iter()
            .filter_map(|l| time_at(l, item, None))
            .max()
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
            .into_iter()
            .collect(),
    }
}

/// The time at `l`: in `format` when given, else any of the forms vendors
/// use (RFC 3339 and its relatives, Unix seconds or milliseconds).
fn time_at(l: &Location, item: &Value, format: Option<&TimeFormat>) -> Option<DateTime<Utc>> {
    let v = l.get(item)?;
    match format {
        None | Some(TimeFormat::Rfc3339) => match v {
            Value::String(s) => parse_lenient_time(s),
            Value::Number(n) => n.as_f64().and_then(|f| {
                let secs = if f > 1e11 { f / 1000.0 } else { f };
                Utc.timestamp_opt(secs.trunc() as i64, 0).single()
            }),
            _ => None,
        },
        Some(TimeFormat::Unix) => {
            let n = v.as_i64().or_else(|| v.as_str()?.trim().parse().ok())?;
            Utc.timestamp_opt(n, 0).single()
        }
        Some(TimeFormat::UnixMs) => {
            let n = v.as_i64().or_else(|| v.as_str()?.trim().parse().ok())?;
            Utc.timestamp_millis_opt(n).single()
        }
        Some(TimeFormat::Strftime(p)) => {
            let s = v.as_str()?.trim();
            DateTime::parse_from_str(s, p)
                .map(|t| t.with_timezone(&Utc))
                .ok()
                .or_else(|| chrono::NaiveDateTime::parse_from_str(s, p).ok().map(|t| t.and_utc()))
        }
    }
}

fn first_time(list: &[Location], item: &Value, format: Option<&TimeFormat>) -> Option<DateTime<Utc>> {
    list.iter().find_map(|l| time_at(l, item, format))
}

fn mapped<T: Clone>(m: &ValueMap<T>, item: &Value) -> (T, Option<String>) {
    let Some(at) = &m.at else { return (m.default.clone(), None) };
    let Some(vendor) = at.get(item).and_then(text_of) else { return (m.default.clone(), None) };
    let value = m.map.get(&vendor.to_ascii_lowercase()).cloned().unwrap_or_else(|| m.default.clone());
    (value, Some(vendor))
}

pub(super) fn normalize(
    spec: &Spec,
    item: &Value,
    ctx: &NormalizeContext<'_>,
) -> Result<Normalized, NormalizeError> {
    let f = &spec.fields;
    if !item.is_object() {
        return Err(NormalizeError("the item is not a JSON object".into()));
    }
    let id = native_id(f, item)
        .ok_or_else(|| NormalizeError("the item's id (fields.id) is missing or empty".into()))?;
    let revision = eval(&f.revision, item)
        .into_iter()
        .next()
        .ok_or_else(|| NormalizeError("the item's revision (fields.revision) is missing or empty".into()))?;
    let created = first_time(&f.created, item, f.created_format.as_ref()).ok_or_else(|| {
        let names: Vec<&str> = f.created.iter().map(Location::as_str).collect();
        NormalizeError(format!(
            "the creation time (fields.created: {}) is missing or not a time",
            names.join(", ")
        ))
    })?;
    let updated = first_time(&f.updated, item, None);
    let observed = first_time(&f.observed, item, None);
    let (item_time, mark) = match &spec.incremental {
        IncrementalSpec::Time { field, format, .. } => {
            let t = time_at(field, item, format.as_ref()).ok_or_else(|| {
                NormalizeError(format!("the incremental field `{}` is missing or not a time", field.as_str()))
            })?;
            (t, None)
        }
        IncrementalSpec::Id { field } => {
            let v = field.get(item);
            let mark =
                v.and_then(|v| v.as_i64().or_else(|| v.as_str()?.trim().parse().ok())).ok_or_else(|| {
                    NormalizeError(format!(
                        "the incremental id `{}` is missing or not an integer",
                        field.as_str()
                    ))
                })?;
            (updated.unwrap_or(created), Some(mark))
        }
    };
    let title = f
        .title
        .as_ref()
        .and_then(|t| t.render(item))
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| format!("{} item {id}", spec.product));
    let description = f.description.as_ref().and_then(|t| t.render(item)).filter(|t| !t.trim().is_empty());
    let (level, severity_vendor) = mapped(&f.severity, item);
    let (state, status_vendor) = mapped(&f.status, item);

    let mut entities = Entities::default();
    for e in &f.hosts {
        for hostname in eval(e, item) {
            entities.hosts.push(Host {
                hostname: Some(hostname),
                id: None,
                ips: Vec::new(),
                role: Role::Related,
            });
        }
    }
    for e in &f.users {
        for name in eval(e, item) {
            entities.users.push(User { name, role: Role::Related });
        }
    }
    for e in &f.ips {
        for text in eval(e, item) {
            if let Ok(address) = text.parse() {
                entities.ips.push(IpEntity { address, role: Role::Related });
            }
        }
    }
    for e in &f.urls {
        for url in eval(e, item) {
            entities.urls.push(UrlEntity { url, role: Role::Related });
        }
    }
    let max = crate::vendors::bounded::MAX_VALUES;
    let mut truncated = Vec::new();
    for (name, len) in [
        ("entities.hosts", entities.hosts.len()),
        ("entities.users", entities.users.len()),
        ("entities.ips", entities.ips.len()),
        ("entities.urls", entities.urls.len()),
    ] {
        if len > max {
            truncated.push(format!("truncated:{name}"));
        }
    }
    entities.hosts.truncate(max);
    entities.users.truncate(max);
    entities.ips.truncate(max);
    entities.urls.truncate(max);
    let mut tags: Vec<String> = Vec::new();
    for e in &f.tags {
        for tag in eval(e, item) {
            if !tags.contains(&tag) && tags.len() < max {
                tags.push(tag);
            }
        }
    }
    tags.extend(truncated);
    let console_url = f
        .console_url
        .as_ref()
        .and_then(|e| eval(e, item).into_iter().next())
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"));

    let event = Event {
        schema_version: SCHEMA_VERSION.to_owned(),
        id: event_id(HttpSource::KEY, ctx.source, &id, &revision),
        source: ctx.source_ref::<HttpSource>(spec.kind),
        native_id: id,
        revision,
        title,
        description,
        severity: Severity { level, vendor: severity_vendor },
        status: Status { state, vendor: status_vendor },
        created_at: created,
        updated_at: updated.filter(|u| *u > created),
        observed_at: observed,
        ingested_at: ctx.ingested_at,
        entities,
        tags,
        attack: Vec::new(),
        console_url,
        raw: ctx.raw(item),
    };
    Ok(Normalized { event, item_time, mark })
}
