//! Login sessions bound to a device: the rules, with no HTTP (the `http` layer reads the
//! cookie and the headers and calls this).

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_device_store::{Peek, Store, Watch};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use subtle::ConstantTimeEq;

use crate::core::audit::{self, AuditKind};
use crate::core::carts::Carts;
use crate::core::context::ServiceContext;
use crate::core::devices::{is_trusted_by, Devices};
use crate::core::error::{Result, ServiceError};
use crate::core::events::{report, SessionEvent};
use crate::core::keys::{Key, TokenHash};
use crate::core::model::{DeviceRecord, EndReason, SessionRecord, SessionStatus};
use crate::core::record::{Change, DecodeCache, Read};
use crate::core::session_records::{end_session, RETENTION};
use crate::identity::client::RequestInfo;
use crate::identity::device_id::DeviceId;
use crate::identity::extract::DeviceContext;

const TOKEN_LEN: usize = 32;
const TOKEN_TEXT_LEN: usize = 43;

/// Timeouts and policies of the sessions.
#[derive(Debug, Clone)]
pub(crate) struct SessionConfig {
    pub(crate) idle_timeout: Duration,
    pub(crate) absolute_timeout: Duration,
    pub(crate) deny_on_fingerprint_change: bool,
    pub(crate) touch_interval: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(30 * 60),
            absolute_timeout: Duration::from_secs(7 * 24 * 3600),
            deny_on_fingerprint_change: false,
            touch_interval: Duration::from_secs(60),
        }
    }
}

/// The signed-in user of a request, checked against the server's session record and
/// its device's trust.
///
/// A handle: cloning it costs one reference count, where each `CurrentSession` extractor
/// and `Sessions::current` call hands out a clone of the checked session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentSession(Arc<Checked>);

/// What a passed check found.
#[derive(Debug, PartialEq, Eq)]
struct Checked {
    record: Arc<SessionRecord>,
    device: Arc<DeviceRecord>,
    hash: TokenHash,
}

impl CurrentSession {
    fn new(record: Arc<SessionRecord>, device: Arc<DeviceRecord>, hash: TokenHash) -> Self {
        Self(Arc::new(Checked {
            record,
            device,
            hash,
        }))
    }

    /// The user.
    #[must_use]
    pub fn user_id(&self) -> &str {
        &self.0.record.user_id
    }

    /// The session's device (one the request presented).
    #[must_use]
    pub fn device_id(&self) -> DeviceId {
        self.0.record.device_id
    }

    /// The session record.
    #[must_use]
    pub fn record(&self) -> &SessionRecord {
        &self.0.record
    }

    /// The device's record, as of this check: trusted by the user.
    #[must_use]
    pub fn device(&self) -> &DeviceRecord {
        &self.0.device
    }

    /// The device's record, shared.
    pub(crate) fn device_arc(&self) -> Arc<DeviceRecord> {
        Arc::clone(&self.0.device)
    }

    /// The first 8 bytes of the session token's hash, hex: enough to correlate logs,
    /// useless for replay.
    #[must_use]
    pub fn session_ref(&self) -> String {
        hex::encode(&self.0.hash[..8])
    }
}

/// A session just started: the token for the cookie (never stored), and the session.
#[derive(Debug, Clone)]
pub(crate) struct NewSession {
    pub(crate) token: String,
    pub(crate) session: CurrentSession,
}

/// What a request presents to a session check.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Presented<'a> {
    pub(crate) hash: TokenHash,
    pub(crate) device: &'a DeviceContext,
    pub(crate) client: ClientHeaders<'a>,
}

/// The headers a session's fingerprint is made of, as the request sent them (empty if
/// absent).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientHeaders<'a> {
    pub(crate) user_agent: &'a [u8],
    pub(crate) accept_language: &'a [u8],
}

impl ClientHeaders<'_> {
    pub(crate) fn fingerprint(&self) -> [u8; 32] {
        fingerprint(self.user_agent, self.accept_language)
    }
}

/// A session that passed the full check, with what it passed on: the store's own
/// allocations of both records (answered from memory, [`Store::peek`]) and the headers
/// that gave the login's fingerprint. While the store answers both keys with those very
/// allocations (neither record changed: a write makes a new one, and this entry keeps the
/// old one alive, so its address is never reused), the request sends the same headers,
/// and a device the session belongs to presents it, the full check would pass again with
/// the same outcome: only the rules that depend on the time run again (expiry, idle
/// timeout, a due last-seen write, which takes the full path). A store that keeps
/// [`Watch`]es on its cached answers tells "the very same allocation" without a lookup.
///
/// [`Store::peek`]: actix_device_store::Store::peek
pub(crate) struct Hot {
    unchanged: Unchanged,
    user_agent: Box<[u8]>,
    accept_language: Box<[u8]>,
    session: CurrentSession,
}

impl Hot {
    /// The session the full check gave.
    pub(crate) fn session(&self) -> &CurrentSession {
        &self.session
    }
}

/// How a [`Hot`] entry tells that neither record changed since its full check.
enum Unchanged {
    /// Watches on both answers, for a store that keeps them: one atomic load each, no
    /// lookup.
    Watched { session: Watch, device: Watch },
    /// The keys and the store's own allocations of both answers: a peek that hands back
    /// the very same allocation.
    Peeked {
        session: (Vec<u8>, Arc<[u8]>),
        device: (Vec<u8>, Arc<[u8]>),
    },
}

impl Unchanged {
    fn holds(&self, store: &dyn Store) -> bool {
        let same = |(key, bytes): &(Vec<u8>, Arc<[u8]>)| matches!(store.peek(key), Peek::Value(now) if Arc::ptr_eq(&now, bytes));
        match self {
            Self::Watched { session, device } => Watch::all_hold([session, device]),
            Self::Peeked { session, device } => same(session) && same(device),
        }
    }
}

/// Fingerprint headers longer than this in all are not kept in a [`Hot`] entry: such
/// sessions take the full check every time (it bounds what a hot entry can hold).
const MAX_HOT_HEADERS: usize = 512;

/// The session rules over the registry: login, check, logout, server-side revocation.
#[derive(Clone)]
pub(crate) struct SessionService {
    devices: Devices,
    carts: Option<Carts>,
    config: Arc<SessionConfig>,
    /// Sessions whose fingerprint change this process has already reported: the event is
    /// raised once per session, not on every request of a browser that updated itself.
    reported: Arc<Mutex<HashSet<TokenHash>>>,
    /// Session and device records of hot sessions, decoded once per stored form.
    decoded: Arc<(DecodeCache<SessionRecord>, DecodeCache<DeviceRecord>)>,
    /// When this process last started a last-seen write of each session: parallel requests
    /// of one browser (a page's assets) find the same stale `last_seen`, and only the first
    /// of them writes.
    touching: Arc<Mutex<std::collections::HashMap<TokenHash, u64>>>,
}

/// Sessions each per-session set of this process (reported fingerprint changes, touches
/// started) remembers before it starts over (a restart re-reports once).
const MAX_REMEMBERED: usize = 100_000;

impl fmt::Debug for SessionService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionService")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SessionService {
    pub(crate) fn new(devices: Devices, carts: Option<Carts>, config: SessionConfig) -> Self {
        Self {
            devices,
            carts,
            config: Arc::new(config),
            reported: Arc::default(),
            decoded: Arc::default(),
            touching: Arc::default(),
        }
    }

    pub(crate) fn devices(&self) -> &Devices {
        &self.devices
    }

    fn ctx(&self) -> &ServiceContext {
        self.devices.context()
    }

    /// Signs `user_id` in on the presenting device: ends the browser's previous session
    /// and every session of the device (fixation), binds the device under the device
    /// limit, merges its cart, stores a new session. Refused when the browser presents
    /// several device identities: nothing is bound on an ambiguous identity.
    pub(crate) async fn login(
        &self,
        device: &DeviceContext,
        user_id: &str,
        info: &RequestInfo,
        fingerprint: [u8; 32],
        previous: Option<TokenHash>,
    ) -> Result<NewSession> {
        if device.is_ambiguous() {
            return Err(ServiceError::AmbiguousDevice);
        }
        if let Some(hash) = previous {
            end_session(self.ctx(), &hash, EndReason::Rotated).await?;
        }
        let device_id = device.id;
        crate::core::session_records::end_device_sessions(
            self.ctx(),
            &device_id,
            EndReason::Rotated,
        )
        .await?;
        let record = self.devices.bind(device_id, user_id, info).await?;
        if let Some(carts) = &self.carts {
            carts.merge_into_user(device_id, user_id).await?;
        }
        let started = self.start(record, user_id, fingerprint).await?;
        audit::append(
            self.ctx(),
            user_id,
            AuditKind::SignIn,
            Some(device_id),
            None,
        )
        .await;
        Ok(started)
    }

    /// Stores a new session for the bound `device` and hands out its token.
    async fn start(
        &self,
        device: DeviceRecord,
        user_id: &str,
        fingerprint: [u8; 32],
    ) -> Result<NewSession> {
        let mut token = [0u8; TOKEN_LEN];
        rand::rngs::OsRng.fill_bytes(&mut token);
        let hash = *blake3::hash(&token).as_bytes();
        let now = self.ctx().now();
        let record = SessionRecord {
            user_id: user_id.to_owned(),
            device_id: device.id,
            created_at: now,
            last_seen: now,
            expires_at: now.saturating_add(millis(self.config.absolute_timeout)),
            idle_timeout_ms: millis(self.config.idle_timeout),
            status: SessionStatus::Active,
            fingerprint,
        };
        let ttl = Some(self.config.absolute_timeout + RETENTION);
        // An empty marker under `dev/{device}/sess/{hash}`: the device holds this session.
        self.ctx()
            .store()
            .put(&Key::DeviceSession(device.id, hash).encode(), &[], ttl)
            .await?;
        self.ctx()
            .records()
            .put(&Key::Session(hash).encode(), &record, ttl)
            .await?;
        metrics::counter!("actix_device_sessions_started_total").increment(1);
        Ok(NewSession {
            token: URL_SAFE_NO_PAD.encode(token),
            session: CurrentSession::new(Arc::new(record), Arc::new(device), hash),
        })
    }

    /// Checks a presented session: known, active, within both timeouts, on a device the
    /// request presented, and that device still trusted by the user (so a revocation
    /// whose later steps failed or raced still holds).
    ///
    /// A token presented by another device revokes the session and raises the hijack
    /// event, unless the request carries several device identities: then it is refused
    /// (`ambiguous_device`) and nothing is revoked, since a tossed cookie must not log the
    /// victim out. A changed fingerprint raises the suspicious-session event.
    ///
    /// This is the full check: callers that kept the [`Hot`] entry of an earlier pass try
    /// [`check_hot`](Self::check_hot) first. A pass comes with a new entry when the session
    /// can take the hot check next time.
    pub(crate) async fn check(
        &self,
        presented: Presented<'_>,
    ) -> Result<(CurrentSession, Option<Arc<Hot>>)> {
        let now = self.ctx().now();
        let (session, hot) = self.check_in_full(&presented, now).await?;
        Ok((session, hot.map(Arc::new)))
    }

    /// Whether the [`Hot`] entry this session's last full check gave still holds: the full
    /// check would pass again with [`Hot::session`]. Answered without waiting. An entry
    /// kept past a change (a revocation, a logout) is harmless: every rule the change
    /// could break is checked here again, or its record's watch has ended.
    pub(crate) fn check_hot(&self, presented: &Presented<'_>, hot: &Hot) -> bool {
        let now = self.ctx().recent();
        let record = hot.session.record();
        let device = presented.device;
        matches!(record.status_at(now), SessionStatus::Active)
            && now.saturating_sub(record.last_seen) < millis(self.config.touch_interval)
            && (record.device_id.ct_eq(&device.id) || device.others.contains(&record.device_id))
            && same_bytes(&hot.user_agent, presented.client.user_agent)
            && same_bytes(&hot.accept_language, presented.client.accept_language)
            && hot.unchanged.holds(self.ctx().store())
    }

    /// Every rule, reading both records; with the [`Hot`] entry the outcome allows (the
    /// store answered both records from memory, the fingerprint matched, nothing was
    /// written).
    async fn check_in_full(
        &self,
        presented: &Presented<'_>,
        now: u64,
    ) -> Result<(CurrentSession, Option<Hot>)> {
        let key = Key::Session(presented.hash).encode();
        let read = (self.decoded.0)
            .read(self.ctx().records(), &key)
            .await?
            .ok_or(ServiceError::NotSignedIn)?;
        let record = read.record;
        match record.status_at(now) {
            SessionStatus::Active => {}
            SessionStatus::Revoked { .. } => return Err(ServiceError::SessionRevoked),
            SessionStatus::Expired => return Err(ServiceError::SessionExpired),
        }
        self.check_device(&record, presented).await?;
        let device_key = Key::Device(record.device_id).encode();
        let device = self.trusted_device(&record, &device_key).await?;
        let same_client = self.check_fingerprint(&record, presented).await?;
        let touched = self
            .touch(&key, &presented.hash, Arc::clone(&record), now)
            .await?;
        let session = CurrentSession::new(Arc::clone(&touched), device.record, presented.hash);
        let client = presented.client;
        let hot = match (read.peeked, device.peeked) {
            (Some(session_bytes), Some(device_bytes))
                if same_client
                    && Arc::ptr_eq(&touched, &record)
                    && client.user_agent.len() + client.accept_language.len()
                        <= MAX_HOT_HEADERS =>
            {
                let unchanged = match read.watch.zip(device.watch) {
                    Some((session, device)) => Unchanged::Watched { session, device },
                    None => Unchanged::Peeked {
                        session: (key, session_bytes),
                        device: (device_key, device_bytes),
                    },
                };
                Some(Hot {
                    unchanged,
                    user_agent: client.user_agent.into(),
                    accept_language: client.accept_language.into(),
                    session: session.clone(),
                })
            }
            _ => None,
        };
        Ok((session, hot))
    }

    /// The session's device must be among the ones the request presented.
    async fn check_device(&self, record: &SessionRecord, presented: &Presented<'_>) -> Result<()> {
        let context = presented.device;
        if record.device_id.ct_eq(&context.id) || context.others.contains(&record.device_id) {
            return Ok(());
        }
        if context.is_ambiguous() {
            return Err(ServiceError::AmbiguousDevice);
        }
        end_session(self.ctx(), &presented.hash, EndReason::Hijacked).await?;
        let event = session_event(record, context.id, &presented.hash);
        tracing::warn!(session = %event.session_ref, "session token presented by another device");
        metrics::counter!("actix_device_session_hijacks_total").increment(1);
        let (victim, by) = (Some(record.device_id), Some(context.id));
        audit::append(self.ctx(), &record.user_id, AuditKind::Hijack, victim, by).await;
        report(
            "session_hijack",
            self.ctx().hooks().session_hijack(&event).await,
        );
        Err(ServiceError::DeviceMismatch)
    }

    /// The session's device record (under `key`), which must still trust the session's
    /// user, bound no later than the session began.
    async fn trusted_device(
        &self,
        record: &SessionRecord,
        key: &[u8],
    ) -> Result<Read<DeviceRecord>> {
        let device = (self.decoded.1).read(self.ctx().records(), key).await?;
        match device {
            Some(d)
                if is_trusted_by(&d.record, &record.user_id)
                    && d.record.bound_at.is_none_or(|at| at <= record.created_at) =>
            {
                Ok(d)
            }
            _ => Err(ServiceError::SessionRevoked),
        }
    }

    /// Whether the request's fingerprint is the login's; a change is reported once per
    /// session and refused if so configured.
    async fn check_fingerprint(
        &self,
        record: &SessionRecord,
        presented: &Presented<'_>,
    ) -> Result<bool> {
        if bool::from(record.fingerprint.ct_eq(&presented.client.fingerprint())) {
            return Ok(true);
        }
        if self.first_report(&presented.hash) {
            self.report_suspicious(record, presented).await;
        }
        if self.config.deny_on_fingerprint_change {
            return Err(ServiceError::Suspicious);
        }
        Ok(false)
    }

    /// Whether this is the first fingerprint change of session `hash` seen here.
    fn first_report(&self, hash: &TokenHash) -> bool {
        let mut reported = self
            .reported
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if reported.len() >= MAX_REMEMBERED {
            reported.clear();
        }
        reported.insert(*hash)
    }

    async fn report_suspicious(&self, record: &SessionRecord, presented: &Presented<'_>) {
        let event = session_event(record, presented.device.id, &presented.hash);
        metrics::counter!("actix_device_sessions_suspicious_total").increment(1);
        let kind = AuditKind::SuspiciousSession;
        audit::append(
            self.ctx(),
            &record.user_id,
            kind,
            Some(record.device_id),
            None,
        )
        .await;
        report(
            "suspicious_session",
            self.ctx().hooks().suspicious_session(&event).await,
        );
    }

    /// Whether this request is the one to write session `hash`'s last-seen now: no other
    /// request of this process started that write within the touch interval.
    fn claim_touch(&self, hash: &TokenHash, now: u64, interval: u64) -> bool {
        let mut touching = self
            .touching
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if touching.len() >= MAX_REMEMBERED {
            touching.retain(|_, at| now.saturating_sub(*at) < interval);
            if touching.len() >= MAX_REMEMBERED {
                // All recent: start over rather than scan on every request (the cost is at
                // most one extra write per session).
                touching.clear();
            }
        }
        match touching.get(hash) {
            Some(at) if now.saturating_sub(*at) < interval => false,
            _ => {
                touching.insert(*hash, now);
                true
            }
        }
    }

    /// Writes last-seen at most once per touch interval, from one request at a time.
    async fn touch(
        &self,
        key: &[u8],
        hash: &TokenHash,
        record: Arc<SessionRecord>,
        now: u64,
    ) -> Result<Arc<SessionRecord>> {
        let interval = millis(self.config.touch_interval);
        if now.saturating_sub(record.last_seen) < interval || !self.claim_touch(hash, now, interval)
        {
            return Ok(record);
        }
        let ttl = Duration::from_millis(record.expires_at.saturating_sub(now)) + RETENTION;
        self.ctx()
            .records()
            .update::<SessionRecord, _>(key, Some(ttl), |current| match current {
                // Another instance (or an earlier write of ours) touched it meanwhile.
                Some(r)
                    if r.status == SessionStatus::Active
                        && now.saturating_sub(r.last_seen) < interval =>
                {
                    Ok(Change::Keep)
                }
                Some(mut r) if r.status == SessionStatus::Active => {
                    r.last_seen = r.last_seen.max(now);
                    Ok(Change::Write(r))
                }
                Some(_) => Err(ServiceError::SessionRevoked),
                None => Err(ServiceError::NotSignedIn),
            })
            .await?
            .map(Arc::new)
            .ok_or(ServiceError::NotSignedIn)
    }

    /// Ends session `hash`; returns whether it was active.
    pub(crate) async fn logout(&self, hash: &TokenHash) -> Result<bool> {
        let key = Key::Session(*hash).encode();
        let record: Option<SessionRecord> = self.ctx().records().get(&key).await?;
        let ended = end_session(self.ctx(), hash, EndReason::Logout).await?;
        if let (true, Some(r)) = (ended, record) {
            let kind = AuditKind::SignOut;
            audit::append(self.ctx(), &r.user_id, kind, Some(r.device_id), None).await;
        }
        Ok(ended)
    }

    /// Ends every session of `user_id` and untrusts every device of the user, with no
    /// device in hand: for password resets and compromised accounts. Safe to retry.
    pub(crate) async fn revoke_user(&self, user_id: &str) -> Result<usize> {
        Ok(self.devices.revoke_user(user_id).await?.len())
    }

    /// Removes expired entries from the store. Returns how many it removed.
    pub(crate) async fn sweep(&self) -> Result<u64> {
        Ok(self.ctx().store().purge_expired().await?)
    }
}

/// The hash of a session token as sent in the cookie, if it is well-formed.
pub(crate) fn token_hash(value: &[u8]) -> Option<TokenHash> {
    if value.len() != TOKEN_TEXT_LEN {
        return None;
    }
    // 43 characters decode to 32 bytes; the slack keeps base64's size estimate happy.
    let mut token = [0u8; TOKEN_LEN + 3];
    let n = URL_SAFE_NO_PAD.decode_slice(value, &mut token).ok()?;
    (n == TOKEN_LEN).then(|| *blake3::hash(&token[..TOKEN_LEN]).as_bytes())
}

/// Keyed BLAKE3 of the client's User-Agent and Accept-Language, length-prefixed, under a
/// key derived once per process from the fingerprint's context string.
pub(crate) fn fingerprint(user_agent: &[u8], accept_language: &[u8]) -> [u8; 32] {
    static KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    let key =
        KEY.get_or_init(|| blake3::derive_key("actix-device 2026-11 session fingerprint v2", b""));
    // The hashed stream is `len(UA) UA len(AL) AL`, lengths as 8-byte big-endian; the
    // usual headers fit a stack buffer and hash in one call, longer ones stream.
    let mut buf = [0u8; 512];
    let n = 16 + user_agent.len() + accept_language.len();
    if n <= buf.len() {
        let mut at = 0;
        for value in [user_agent, accept_language] {
            buf[at..at + 8].copy_from_slice(&(value.len() as u64).to_be_bytes());
            buf[at + 8..at + 8 + value.len()].copy_from_slice(value);
            at += 8 + value.len();
        }
        return *blake3::keyed_hash(key, &buf[..n]).as_bytes();
    }
    let mut hasher = blake3::Hasher::new_keyed(key);
    for value in [user_agent, accept_language] {
        hasher.update(&(value.len() as u64).to_be_bytes());
        hasher.update(value);
    }
    *hasher.finalize().as_bytes()
}

fn session_event(record: &SessionRecord, presented_by: DeviceId, hash: &TokenHash) -> SessionEvent {
    SessionEvent {
        user_id: record.user_id.clone(),
        session_device: record.device_id,
        presented_by,
        session_ref: hex::encode(&hash[..8]),
    }
}

/// `a == b`, without calling `memcmp` for two empty slices: an empty slice's pointer is
/// dangling (`0x1`), and glibc 2.36's AVX2 `memcmp` spends 80 to 145 ns on it (measured on
/// the project's machine, against about a nanosecond for short equal slices). Clients that
/// send no User-Agent or Accept-Language (wrk, many API clients) would pay it twice per
/// signed-in request.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && (a.is_empty() || a == b)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::{fingerprint, same_bytes};

    #[test]
    fn same_bytes_is_slice_equality() {
        let cases: [&[u8]; 5] = [b"", b"a", b"b", b"ab", b"abc"];
        for a in cases {
            for b in cases {
                assert_eq!(same_bytes(a, b), a == b, "{a:?} {b:?}");
            }
        }
        assert!(same_bytes(&Box::<[u8]>::default(), &Vec::new()));
    }

    /// The fingerprint as a stream of updates: the one-call path must hash the same bytes.
    fn streamed(user_agent: &[u8], accept_language: &[u8]) -> [u8; 32] {
        let key = blake3::derive_key("actix-device 2026-11 session fingerprint v2", b"");
        let mut hasher = blake3::Hasher::new_keyed(&key);
        for value in [user_agent, accept_language] {
            hasher.update(&(value.len() as u64).to_be_bytes());
            hasher.update(value);
        }
        *hasher.finalize().as_bytes()
    }

    #[test]
    fn short_and_long_headers_fingerprint_as_one_stream() {
        let long = vec![b'x'; 600];
        for (ua, al) in [
            (&b""[..], &b""[..]),
            (b"Mozilla/5.0", b"en-GB,en;q=0.9"),
            (&long[..496], b""),
            (&long[..497], b""),
            (&long[..], b"fr"),
        ] {
            assert_eq!(
                fingerprint(ua, al),
                streamed(ua, al),
                "{} + {}",
                ua.len(),
                al.len()
            );
        }
        assert_ne!(
            fingerprint(b"ab", b""),
            fingerprint(b"a", b"b"),
            "lengths separate"
        );
    }
}
