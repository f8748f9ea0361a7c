//! The Redis Streams log: shared by every node of a cluster.
//!
//! One stream (`<prefix>log`, field `d` = the indicator's canonical JSON) holds 24 hours, trimmed by
//! `XADD … MINID ~`. Beside it, `<prefix>epoch` (created with `SET NX`) names the incarnation: a
//! Redis that lost its data comes back without it, a new epoch is created, and every cursor from
//! before is recognised as belonging to a lost history. A Redis that lost only part of it (an
//! older AOF or snapshot, a lagging replica promoted) keeps the key; each node then notices that
//! the newest entry it read is gone and replaces the epoch (`READ_SCRIPT`).
//!
//! Appends and reads are Lua scripts so that the epoch, the retention boundary and the entries are
//! read atomically: a reader can never see entries of one incarnation labelled with another's
//! epoch, nor miss that retention removed entries it had not read (`XRANGE` from a trimmed id
//! silently starts later). Redis 7.0 updates `max-deleted-entry-id` only for `XDEL`, not for
//! trimming, so the retention boundary is derived from `entries-added`, `length` and
//! `recorded-first-entry-id`: when anything was trimmed, every position before the first
//! retained entry is gone.

use std::sync::Arc;
use std::time::Duration;

use domain::{Cursor, Indicator, StreamId};
use futures::future::BoxFuture;
use futures::FutureExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Script, Value};
use tokio::sync::Mutex;

use crate::{Entry, Log, LogBounds, LogError, ReadBatch, SharedEntry, Spaced, SpacedOutcome};

const APPEND_SCRIPT: &str = r#"
redis.call('SET', KEYS[2], ARGV[1], 'NX')
local out = {redis.call('GET', KEYS[2])}
for i = 3, #ARGV do
  out[#out + 1] = redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[2], '*', 'd', ARGV[i])
end
return out
"#;

// KEYS: stream, epoch, then one dedupe key per message; ARGV: epoch candidate, min id, dedupe
// TTL, then the messages. Returns the epoch, then per message its id or '' for a duplicate ('',
// not nil: a nil would end the returned array early).
const APPEND_ONCE_SCRIPT: &str = r#"
redis.call('SET', KEYS[2], ARGV[1], 'NX')
local out = {redis.call('GET', KEYS[2])}
for i = 3, #KEYS do
  if redis.call('SET', KEYS[i], '1', 'NX', 'PX', ARGV[3]) then
    out[#out + 1] = redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[2], '*', 'd', ARGV[i + 1])
  else
    out[#out + 1] = ''
  end
end
return out
"#;

// KEYS: stream, epoch, then one series key per item; ARGV: epoch candidate, min id, series TTL
// (ms), then per item its time, its spacing and its message. Times are microseconds, exact in
// Lua's doubles (< 2^53). Returns the epoch, then per item its id, or `r:<newest>` when refused.
const APPEND_SPACED_SCRIPT: &str = r#"
redis.call('SET', KEYS[2], ARGV[1], 'NX')
local out = {redis.call('GET', KEYS[2])}
for i = 3, #KEYS do
  local at = 4 + (i - 3) * 3
  local time = tonumber(ARGV[at])
  local newest = redis.call('GET', KEYS[i])
  if newest and time < tonumber(newest) + tonumber(ARGV[at + 1]) then
    out[#out + 1] = 'r:' .. newest
  else
    redis.call('SET', KEYS[i], ARGV[at], 'PX', ARGV[3])
    out[#out + 1] = redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[2], '*', 'd', ARGV[at + 2])
  end
end
return out
"#;

// KEYS: stream, epoch; ARGV: after, limit, epoch candidate, min id, then the epoch and id of
// the newest entry this node has read ('' and '0-0' when none). Returns the epoch, the stream's
// counters, the entries, the server's clock, and 1 when this call found the history lost and
// started a new epoch.
//
// Lost history: Redis came back from an older AOF or snapshot, or a replica that lagged was
// promoted. The epoch key came back with it, so only the entries tell: the newest one this node
// read is gone although retention would have kept it (it is not before the first entry held),
// or the stream's last id is below it. Only what this node read decides, never a client's
// cursor: a forged cursor must not reset everybody.
const READ_SCRIPT: &str = r#"
local function before(a, b)
  local ams, aseq = string.match(a, '^(%d+)-(%d+)$')
  local bms, bseq = string.match(b, '^(%d+)-(%d+)$')
  ams, bms = tonumber(ams), tonumber(bms)
  if ams ~= bms then return ams < bms end
  return tonumber(aseq) < tonumber(bseq)
end
redis.call('SET', KEYS[2], ARGV[3], 'NX')
local epoch = redis.call('GET', KEYS[2])
local deleted, last, len, first, added = '0-0', '0-0', 0, '0-0', 0
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('XTRIM', KEYS[1], 'MINID', '~', ARGV[4])
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    local name = info[i]
    if name == 'max-deleted-entry-id' then deleted = info[i + 1] end
    if name == 'last-generated-id' then last = info[i + 1] end
    if name == 'length' then len = info[i + 1] end
    if name == 'recorded-first-entry-id' then first = info[i + 1] end
    if name == 'entries-added' then added = info[i + 1] end
  end
end
local lost = 0
if ARGV[5] == epoch and ARGV[6] ~= '0-0' then
  local gone = before(last, ARGV[6])
  if not gone and #redis.call('XRANGE', KEYS[1], ARGV[6], ARGV[6]) == 0 then
    local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
    gone = #oldest == 1 and before(oldest[1][1], ARGV[6])
  end
  if gone then
    epoch = ARGV[3]
    redis.call('SET', KEYS[2], epoch)
    lost = 1
  end
end
local entries = {}
if tonumber(ARGV[2]) > 0 then
  entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])
end
local time = redis.call('TIME')
local clock = tostring(time[1]) .. string.format('%03d', math.floor(tonumber(time[2]) / 1000))
return {epoch, deleted, last, len, entries, first, added, clock, lost}
"#;

/// A command connection that reconnects by itself, with bounded waits.
///
/// redis-rs's defaults retry a lost connection six times with delays growing to a minute, during
/// which every command waits; Sluice has its own retry loops (with jittered backoff) around every
/// Redis call, so the manager tries once more, briefly, and reports the error instead.
pub async fn connection_manager(client: &redis::Client) -> redis::RedisResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Duration::from_secs(2))
        .set_response_timeout(Duration::from_secs(5))
        .set_number_of_retries(1)
        .set_factor(2)
        .set_max_delay(500);
    ConnectionManager::new_with_config(client.clone(), config).await
}

/// Settings of the Redis log.
#[derive(Debug, Clone)]
pub struct RedisLogConfig {
    /// `redis://host:port/db`.
    pub url: String,
    /// Prefix of every key Sluice writes (default `sluice:`), so tests and tenants can share a server.
    pub key_prefix: String,
    /// How long entries are kept (default 24 h).
    pub retention: Duration,
}

pub struct RedisLog {
    stream_key: String,
    epoch_key: String,
    once_prefix: String,
    series_prefix: String,
    retention: Duration,
    client: redis::Client,
    commands: ConnectionManager,
    /// Dedicated connection for the hub's blocking `XREAD`: blocking on the shared connection
    /// would stall every other command behind it.
    blocking: Mutex<Option<MultiplexedConnection>>,
    /// The newest entry this node has read, and its epoch: what a Redis that lost data no
    /// longer holds (see `READ_SCRIPT`).
    newest_read: std::sync::Mutex<(String, StreamId)>,
    append: Script,
    append_once: Script,
    append_spaced: Script,
    read: Script,
}

impl RedisLog {
    /// Connects (failing fast if Redis is unreachable at start) and returns the log.
    pub async fn connect(config: RedisLogConfig) -> anyhow::Result<Arc<Self>> {
        use anyhow::Context;
        let client = redis::Client::open(config.url.as_str())
            .with_context(|| format!("--redis `{}` is not a valid Redis URL", config.url))?;
        let commands = connection_manager(&client)
            .await
            .with_context(|| format!("cannot connect to Redis at {}", config.url))?;
        let prefix = config.key_prefix;
        Ok(Arc::new(RedisLog {
            stream_key: format!("{prefix}log"),
            epoch_key: format!("{prefix}epoch"),
            once_prefix: format!("{prefix}once:"),
            series_prefix: format!("{prefix}series:"),
            retention: config.retention,
            client,
            commands,
            blocking: Mutex::new(None),
            newest_read: std::sync::Mutex::new((String::new(), StreamId::ZERO)),
            append: Script::new(APPEND_SCRIPT),
            append_once: Script::new(APPEND_ONCE_SCRIPT),
            append_spaced: Script::new(APPEND_SPACED_SCRIPT),
            read: Script::new(READ_SCRIPT),
        }))
    }

    /// The log's multiplexed command connection, for other short commands on the same server
    /// (the connection-cap leases), so a node holds one.
    pub fn commands(&self) -> ConnectionManager {
        self.commands.clone()
    }

    fn min_id(&self) -> String {
        let now = chrono::Utc::now().timestamp_millis().max(0) as u64;
        let keep = u64::try_from(self.retention.as_millis()).unwrap_or(u64::MAX);
        format!("{}-0", now.saturating_sub(keep))
    }

    /// Runs the read script: the log's state and up to `limit` entries after `after`, checking
    /// that what this node read before is still there.
    async fn read_script(&self, after: StreamId, limit: usize) -> Result<ReadInfo, LogError> {
        let (seen_epoch, seen_id) = self.newest_read.lock().expect("poisoned").clone();
        let mut conn = self.commands.clone();
        let reply: Value = self
            .read
            .key(&self.stream_key)
            .key(&self.epoch_key)
            .arg(after.to_string())
            .arg(limit)
            .arg(crate::new_epoch())
            .arg(self.min_id())
            .arg(seen_epoch.as_str())
            .arg(seen_id.to_string())
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let info = ReadInfo::parse(reply)?;
        if info.lost {
            tracing::error!(
                log.epoch.old = %seen_epoch,
                log.epoch.new = %info.epoch,
                log.newest_read = %seen_id,
                "Redis no longer holds entries this node read (restarted from an older AOF or \
                 snapshot, or a lagging replica was promoted): started a new epoch, so every \
                 client is told `reset` instead of missing them silently"
            );
        }
        let mut newest = self.newest_read.lock().expect("poisoned");
        if newest.0 != info.epoch {
            *newest = (info.epoch.clone(), StreamId::ZERO);
        }
        // The stream's last id is an entry while it holds any; an empty stream's is not.
        if info.len > 0 {
            newest.1 = newest.1.max(info.last);
        }
        Ok(info)
    }

    async fn read_once(&self, after: StreamId, limit: usize) -> Result<ReadBatch, LogError> {
        let info = self.read_script(after, limit).await?;
        let trimmed_through = info.trimmed_through();
        let (entries, read_through, scanned) = parse_entries(&info.epoch, info.entries)?;
        let epoch = info.epoch;
        Ok(ReadBatch {
            epoch,
            trimmed_through,
            entries,
            read_through,
            clock_ms: info.clock_ms,
            scanned,
        })
    }

    async fn block_until_after(&self, after: StreamId, block: Duration) -> Result<(), LogError> {
        let mut slot = self.blocking.lock().await;
        if slot.is_none() {
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Duration::from_secs(2))
                .set_response_timeout(block + Duration::from_secs(5));
            let conn = self
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .map_err(unavailable)?;
            *slot = Some(conn);
        }
        let conn = slot.as_mut().expect("just set");
        let result: redis::RedisResult<Value> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(block.as_millis().max(1) as u64)
            .arg("STREAMS")
            .arg(&self.stream_key)
            .arg(after.to_string())
            .query_async(conn)
            .await;
        if let Err(error) = result {
            // Drop the connection: the next call opens a fresh one.
            *slot = None;
            return Err(unavailable(error));
        }
        Ok(())
    }
}

impl Log for RedisLog {
    fn backend_name(&self) -> &'static str {
        "redis"
    }

    fn append(&self, items: Vec<Indicator>) -> BoxFuture<'_, Result<Vec<Cursor>, LogError>> {
        async move {
            if items.is_empty() {
                return Ok(Vec::new());
            }
            let mut invocation = self.append.key(&self.stream_key);
            invocation
                .key(&self.epoch_key)
                .arg(crate::new_epoch())
                .arg(self.min_id());
            for item in &items {
                invocation.arg(item.to_json().to_string());
            }
            let mut conn = self.commands.clone();
            let reply: Value = invocation
                .invoke_async(&mut conn)
                .await
                .map_err(unavailable)?;
            let (epoch, values) = split_append_reply(reply)?;
            values.map(|id| cursor(&epoch, id)).collect()
        }
        .boxed()
    }

    fn append_once(
        &self,
        items: Vec<(Indicator, [u8; 32])>,
        remember: Duration,
    ) -> BoxFuture<'_, Result<Vec<Option<Cursor>>, LogError>> {
        async move {
            if items.is_empty() {
                return Ok(Vec::new());
            }
            let mut invocation = self.append_once.key(&self.stream_key);
            invocation.key(&self.epoch_key);
            for (_, message_key) in &items {
                invocation.key(format!("{}{}", self.once_prefix, hex_encode(message_key)));
            }
            invocation
                .arg(crate::new_epoch())
                .arg(self.min_id())
                .arg(remember.as_millis().max(1) as u64);
            for (indicator, _) in &items {
                invocation.arg(indicator.to_json().to_string());
            }
            let mut conn = self.commands.clone();
            let reply: Value = invocation
                .invoke_async(&mut conn)
                .await
                .map_err(unavailable)?;
            let (epoch, values) = split_append_reply(reply)?;
            values
                .map(|id| match id {
                    Value::BulkString(bytes) if bytes.is_empty() => Ok(None),
                    id => cursor(&epoch, id).map(Some),
                })
                .collect()
        }
        .boxed()
    }

    fn append_spaced(
        &self,
        items: Vec<Spaced>,
        remember: Duration,
    ) -> BoxFuture<'_, Result<Vec<SpacedOutcome>, LogError>> {
        async move {
            if items.is_empty() {
                return Ok(Vec::new());
            }
            let mut invocation = self.append_spaced.key(&self.stream_key);
            invocation.key(&self.epoch_key);
            for item in &items {
                invocation.key(format!(
                    "{}{}",
                    self.series_prefix,
                    hex_encode(&item.series)
                ));
            }
            invocation
                .arg(crate::new_epoch())
                .arg(self.min_id())
                .arg(remember.as_millis().max(1) as u64);
            for item in &items {
                invocation
                    .arg(item.time)
                    .arg(item.spacing)
                    .arg(item.indicator.to_json().to_string());
            }
            let mut conn = self.commands.clone();
            let reply: Value = invocation
                .invoke_async(&mut conn)
                .await
                .map_err(unavailable)?;
            let (epoch, values) = split_append_reply(reply)?;
            values
                .map(|reply| {
                    let text = string(reply)?;
                    match text.strip_prefix("r:") {
                        Some(newest) => newest
                            .parse()
                            .map(|newest| SpacedOutcome::Refused { newest })
                            .map_err(|_| protocol("a series holds something other than a time")),
                        None => {
                            cursor(&epoch, Value::SimpleString(text)).map(SpacedOutcome::Appended)
                        }
                    }
                })
                .collect()
        }
        .boxed()
    }

    fn bounds(&self) -> BoxFuture<'_, Result<LogBounds, LogError>> {
        async move {
            let info = self.read_script(StreamId::ZERO, 0).await?;
            Ok(LogBounds {
                trimmed_through: info.trimmed_through(),
                epoch: info.epoch,
                last: info.last,
                len: info.len,
            })
        }
        .boxed()
    }

    fn read_after(
        &self,
        after: StreamId,
        limit: usize,
    ) -> BoxFuture<'_, Result<ReadBatch, LogError>> {
        self.read_once(after, limit).boxed()
    }

    fn wait_after(
        &self,
        after: StreamId,
        limit: usize,
        block: Duration,
    ) -> BoxFuture<'_, Result<ReadBatch, LogError>> {
        async move {
            let batch = self.read_once(after, limit).await?;
            if !batch.entries.is_empty() {
                return Ok(batch);
            }
            self.block_until_after(after, block).await?;
            self.read_once(after, limit).await
        }
        .boxed()
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), LogError>> {
        async move {
            let mut conn = self.commands.clone();
            redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .map(drop)
                .map_err(unavailable)
        }
        .boxed()
    }
}

/// What the read script returns.
struct ReadInfo {
    epoch: String,
    max_deleted: StreamId,
    last: StreamId,
    len: u64,
    entries: Value,
    first_recorded: StreamId,
    added: u64,
    clock_ms: u64,
    /// This read found history this node had read gone, and started a new epoch.
    lost: bool,
}

impl ReadInfo {
    fn parse(reply: Value) -> Result<ReadInfo, LogError> {
        let [epoch, deleted, last, len, entries, first, added, clock, lost] = array_of::<9>(reply)?;
        let epoch = string(epoch)?;
        // Someone else's value in the epoch key must not become a cursor (or a panic).
        domain::cursor::validate_epoch(&epoch).map_err(|_| {
            LogError::Protocol(format!("the epoch key holds `{epoch}`, not a Sluice epoch"))
        })?;
        Ok(ReadInfo {
            epoch,
            max_deleted: stream_id(deleted)?,
            last: stream_id(last)?,
            len: number(len)?,
            entries,
            first_recorded: stream_id(first)?,
            added: number(added)?,
            clock_ms: number(clock)?,
            lost: number(lost)? == 1,
        })
    }

    /// The newest position whose history may be gone: `XDEL`s (`max-deleted-entry-id`) and,
    /// when trimming removed anything, everything before the first retained entry.
    fn trimmed_through(&self) -> StreamId {
        let trimmed = if self.added <= self.len {
            StreamId::ZERO
        } else if self.len == 0 {
            self.last
        } else {
            predecessor(self.first_recorded)
        };
        trimmed.max(self.max_deleted)
    }
}

/// The greatest stream id smaller than `id` (`0-0` stays `0-0`).
fn predecessor(id: StreamId) -> StreamId {
    match (id.ms, id.seq) {
        (0, 0) => StreamId::ZERO,
        (ms, 0) => StreamId::new(ms - 1, u64::MAX),
        (ms, seq) => StreamId::new(ms, seq - 1),
    }
}

/// Every append script answers the epoch, then one value per item.
fn split_append_reply(reply: Value) -> Result<(String, std::vec::IntoIter<Value>), LogError> {
    let mut values = array(reply)?.into_iter();
    let epoch = string(
        values
            .next()
            .ok_or_else(|| protocol("empty append reply"))?,
    )?;
    Ok((epoch, values))
}

fn number(value: Value) -> Result<u64, LogError> {
    match value {
        Value::Int(n) => Ok(n.max(0) as u64),
        other => string(other)?
            .parse()
            .map_err(|_| protocol("expected a number in the read reply")),
    }
}

fn unavailable(error: redis::RedisError) -> LogError {
    LogError::Unavailable(error.to_string())
}

fn protocol(what: &str) -> LogError {
    LogError::Protocol(what.to_owned())
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn array(value: Value) -> Result<Vec<Value>, LogError> {
    match value {
        Value::Array(items) => Ok(items),
        other => Err(LogError::Protocol(format!(
            "expected an array, got {other:?}"
        ))),
    }
}

fn array_of<const N: usize>(value: Value) -> Result<[Value; N], LogError> {
    array(value)?.try_into().map_err(|items: Vec<Value>| {
        LogError::Protocol(format!("expected {N} values, got {}", items.len()))
    })
}

fn string(value: Value) -> Result<String, LogError> {
    match value {
        Value::BulkString(bytes) => {
            String::from_utf8(bytes).map_err(|_| protocol("a reply string is not UTF-8"))
        }
        Value::SimpleString(text) => Ok(text),
        Value::Int(n) => Ok(n.to_string()),
        other => Err(LogError::Protocol(format!(
            "expected a string, got {other:?}"
        ))),
    }
}

fn stream_id(value: Value) -> Result<StreamId, LogError> {
    let text = string(value)?;
    StreamId::parse(&text).map_err(|_| LogError::Protocol(format!("`{text}` is not a stream id")))
}

fn cursor(epoch: &str, id: Value) -> Result<Cursor, LogError> {
    Cursor::new(epoch, stream_id(id)?)
        .map_err(|_| LogError::Protocol(format!("`{epoch}` is not a valid epoch")))
}

/// Parses `XRANGE` entries, skipping (and logging) any that are not valid indicators: the stream
/// is only written by Sluice, but a stray `XADD` by hand must not stop delivery.
fn parse_entries(
    epoch: &str,
    entries: Value,
) -> Result<(Vec<SharedEntry>, Option<StreamId>, usize), LogError> {
    let mut parsed = Vec::new();
    let mut read_through = None;
    let entries = array(entries)?;
    let scanned = entries.len();
    for entry in entries {
        let [id, fields] = array_of::<2>(entry)?;
        let cursor = cursor(epoch, id)?;
        read_through = Some(cursor.id());
        let mut fields = array(fields)?.into_iter();
        let mut data = None;
        while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
            if matches!(&name, Value::BulkString(n) if n == b"d") {
                data = Some(value);
            }
        }
        let stored = match data {
            Some(Value::BulkString(bytes)) => bytes,
            _ => {
                tracing::warn!(entry.cursor = %cursor, "log entry without a `d` field skipped");
                continue;
            }
        };
        match Entry::from_stored(cursor.clone(), &stored) {
            Ok(entry) => parsed.push(entry),
            Err(rejection) => {
                tracing::warn!(entry.cursor = %cursor, error = %rejection, "invalid log entry skipped");
            }
        }
    }
    Ok((parsed, read_through, scanned))
}
