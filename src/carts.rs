//! Per-device shopping carts that follow the user after login.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix_device_store::{Clock, Store, SystemClock};
use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use serde::{Deserialize, Serialize};

use crate::api_error::ApiError;
use crate::device_id::DeviceId;
use crate::record::{Change, Record, Records};
use crate::registry::device_subkey;
use crate::sessions::Sessions;

/// One line of a cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLine {
    /// The product's stock-keeping unit.
    pub sku: String,
    /// How many.
    pub quantity: u32,
    /// Optional attributes (size, colour, ...) as a JSON text, kept as given.
    pub attributes: Option<String>,
}

/// A cart as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CartRecord {
    /// The lines, in the order they were first added.
    pub lines: Vec<CartLine>,
    /// Last change, in milliseconds since the epoch.
    pub updated_at: u64,
}

impl Record for CartRecord {
    const KIND: &'static str = "cart";
    const VERSION: u8 = 1;
}

impl CartRecord {
    /// Total number of items.
    #[must_use]
    pub fn total_quantity(&self) -> u64 {
        self.lines.iter().map(|l| u64::from(l.quantity)).sum()
    }
}

/// Whose cart: a device's (anonymous) or a signed-in user's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CartOwner {
    /// An anonymous device's cart.
    Device(DeviceId),
    /// A user's cart, shared by all their devices.
    User(String),
}

impl CartOwner {
    fn key(&self) -> Vec<u8> {
        match self {
            CartOwner::Device(id) => device_subkey(id, b"cart"),
            CartOwner::User(user) => [&b"ucart/"[..], user.as_bytes()].concat(),
        }
    }
}

const MAX_SKU: usize = 128;
const MAX_ATTRIBUTES: usize = 2048;

/// Configuration of [`Carts`].
#[must_use]
pub struct CartsBuilder {
    store: Arc<dyn Store>,
    max_lines: usize,
    max_quantity: u32,
    idle_ttl: Duration,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for CartsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CartsBuilder")
            .field("max_lines", &self.max_lines)
            .field("max_quantity", &self.max_quantity)
            .field("idle_ttl", &self.idle_ttl)
            .finish_non_exhaustive()
    }
}

impl CartsBuilder {
    /// At most this many lines per cart (default 100).
    pub fn max_lines(mut self, n: usize) -> Self {
        self.max_lines = n;
        self
    }
    /// At most this quantity per line (default 999).
    pub fn max_quantity(mut self, n: u32) -> Self {
        self.max_quantity = n;
        self
    }
    /// A cart untouched this long expires (default 30 days).
    pub fn idle_ttl(mut self, ttl: Duration) -> Self {
        self.idle_ttl = ttl;
        self
    }
    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }
    /// The service.
    pub fn build(self) -> Carts {
        Carts {
            inner: Arc::new(CartsInner {
                records: Records::new(self.store),
                max_lines: self.max_lines,
                max_quantity: self.max_quantity,
                idle_ttl: self.idle_ttl,
                clock: self.clock,
            }),
        }
    }
}

struct CartsInner {
    records: Records,
    max_lines: usize,
    max_quantity: u32,
    idle_ttl: Duration,
    clock: Arc<dyn Clock>,
}

/// Carts in the store. Every change is a compare-and-swap loop, so concurrent requests
/// from one browser never lose an update.
#[derive(Clone)]
pub struct Carts {
    inner: Arc<CartsInner>,
}

impl fmt::Debug for Carts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Carts")
            .field("max_lines", &self.inner.max_lines)
            .field("max_quantity", &self.inner.max_quantity)
            .finish_non_exhaustive()
    }
}

impl Carts {
    /// Carts on `store` with the defaults.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self::builder(store).build()
    }

    /// A builder on `store`.
    pub fn builder(store: Arc<dyn Store>) -> CartsBuilder {
        CartsBuilder {
            store,
            max_lines: 100,
            max_quantity: 999,
            idle_ttl: Duration::from_secs(30 * 24 * 3600),
            clock: Arc::new(SystemClock),
        }
    }

    /// The cart (empty if there is none or it expired).
    pub async fn get(&self, owner: &CartOwner) -> Result<CartRecord, ApiError> {
        Ok(self
            .inner
            .records
            .get::<CartRecord>(&owner.key())
            .await?
            .unwrap_or_default())
    }

    /// Adds `quantity` of `sku` (to an existing line's quantity, if there is one).
    pub async fn add(
        &self,
        owner: &CartOwner,
        sku: &str,
        quantity: u32,
        attributes: Option<&serde_json::Value>,
    ) -> Result<CartRecord, ApiError> {
        check_sku(sku)?;
        if quantity == 0 {
            return Err(ApiError::InvalidBody(
                "quantity must be at least 1".to_owned(),
            ));
        }
        let attributes = attributes.map(serde_json::Value::to_string);
        if attributes
            .as_ref()
            .is_some_and(|a| a.len() > MAX_ATTRIBUTES)
        {
            return Err(ApiError::InvalidBody(format!(
                "attributes are at most {MAX_ATTRIBUTES} bytes of JSON"
            )));
        }
        let (max_lines, max_quantity) = (self.inner.max_lines, self.inner.max_quantity);
        self.change(owner, |cart| {
            match cart.lines.iter_mut().find(|l| l.sku == sku) {
                Some(line) => {
                    let total = line.quantity.saturating_add(quantity);
                    if total > max_quantity {
                        return Err(ApiError::CartLimit(format!(
                            "at most {max_quantity} of one item"
                        )));
                    }
                    line.quantity = total;
                    if attributes.is_some() {
                        line.attributes.clone_from(&attributes);
                    }
                }
                None => {
                    if cart.lines.len() >= max_lines {
                        return Err(ApiError::CartLimit(format!(
                            "at most {max_lines} lines in a cart"
                        )));
                    }
                    if quantity > max_quantity {
                        return Err(ApiError::CartLimit(format!(
                            "at most {max_quantity} of one item"
                        )));
                    }
                    cart.lines.push(CartLine {
                        sku: sku.to_owned(),
                        quantity,
                        attributes: attributes.clone(),
                    });
                }
            }
            Ok(())
        })
        .await
    }

    /// Sets the quantity of `sku`; 0 removes the line.
    pub async fn set_quantity(
        &self,
        owner: &CartOwner,
        sku: &str,
        quantity: u32,
    ) -> Result<CartRecord, ApiError> {
        check_sku(sku)?;
        let max_quantity = self.inner.max_quantity;
        if quantity > max_quantity {
            return Err(ApiError::CartLimit(format!(
                "at most {max_quantity} of one item"
            )));
        }
        self.change(owner, |cart| {
            if quantity == 0 {
                cart.lines.retain(|l| l.sku != sku);
                return Ok(());
            }
            match cart.lines.iter_mut().find(|l| l.sku == sku) {
                Some(line) => {
                    line.quantity = quantity;
                    Ok(())
                }
                None => Err(ApiError::NotInCart),
            }
        })
        .await
    }

    /// Removes the line of `sku`.
    pub async fn remove(&self, owner: &CartOwner, sku: &str) -> Result<CartRecord, ApiError> {
        self.set_quantity(owner, sku, 0).await
    }

    /// Empties the cart.
    pub async fn clear(&self, owner: &CartOwner) -> Result<(), ApiError> {
        self.inner.records.store().delete(&owner.key()).await?;
        Ok(())
    }

    /// Moves the device's cart into the user's (quantities added, each line capped at the
    /// per-line maximum, lines beyond the limit dropped) and empties the device's. Called
    /// at login by [`Sessions`] when it was given these carts.
    pub async fn merge_into_user(
        &self,
        device: DeviceId,
        user_id: &str,
    ) -> Result<CartRecord, ApiError> {
        let from = CartOwner::Device(device);
        let device_cart = self.get(&from).await?;
        let to = CartOwner::User(user_id.to_owned());
        if device_cart.lines.is_empty() {
            return self.get(&to).await;
        }
        let (max_lines, max_quantity) = (self.inner.max_lines, self.inner.max_quantity);
        let merged = self
            .change(&to, |cart| {
                for line in &device_cart.lines {
                    let room = cart.lines.len() < max_lines;
                    match cart.lines.iter_mut().find(|l| l.sku == line.sku) {
                        Some(existing) => {
                            existing.quantity = existing
                                .quantity
                                .saturating_add(line.quantity)
                                .min(max_quantity);
                        }
                        None if room => cart.lines.push(line.clone()),
                        None => {}
                    }
                }
                Ok(())
            })
            .await?;
        self.clear(&from).await?;
        Ok(merged)
    }

    async fn change(
        &self,
        owner: &CartOwner,
        mut edit: impl FnMut(&mut CartRecord) -> Result<(), ApiError>,
    ) -> Result<CartRecord, ApiError> {
        let now = self.inner.clock.now_millis();
        let record = self
            .inner
            .records
            .update::<CartRecord, _>(&owner.key(), Some(self.inner.idle_ttl), |current| {
                let mut cart = current.unwrap_or_default();
                edit(&mut cart)?;
                cart.updated_at = now;
                Ok(if cart.lines.is_empty() {
                    Change::Delete
                } else {
                    Change::Write(cart)
                })
            })
            .await?;
        Ok(record.unwrap_or_default())
    }
}

fn check_sku(sku: &str) -> Result<(), ApiError> {
    if sku.is_empty() || sku.len() > MAX_SKU || sku.chars().any(char::is_control) {
        return Err(ApiError::InvalidBody(format!(
            "a sku is 1 to {MAX_SKU} bytes without control characters"
        )));
    }
    Ok(())
}

/// The cart of the request: the signed-in user's when there is a valid session (and
/// [`Sessions`] is in app data), the device's otherwise. Needs [`Carts`] in app data
/// (`web::Data<Carts>`).
#[derive(Debug, Clone)]
pub struct Cart {
    /// Whose cart it is.
    pub owner: CartOwner,
    carts: Carts,
}

impl Cart {
    /// The cart's contents.
    pub async fn get(&self) -> Result<CartRecord, ApiError> {
        self.carts.get(&self.owner).await
    }
    /// See [`Carts::add`].
    pub async fn add(
        &self,
        sku: &str,
        quantity: u32,
        attributes: Option<&serde_json::Value>,
    ) -> Result<CartRecord, ApiError> {
        self.carts.add(&self.owner, sku, quantity, attributes).await
    }
    /// See [`Carts::set_quantity`].
    pub async fn set_quantity(&self, sku: &str, quantity: u32) -> Result<CartRecord, ApiError> {
        self.carts.set_quantity(&self.owner, sku, quantity).await
    }
    /// See [`Carts::remove`].
    pub async fn remove(&self, sku: &str) -> Result<CartRecord, ApiError> {
        self.carts.remove(&self.owner, sku).await
    }
    /// See [`Carts::clear`].
    pub async fn clear(&self) -> Result<(), ApiError> {
        self.carts.clear(&self.owner).await
    }
}

impl FromRequest for Cart {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let carts = req
                .app_data::<web::Data<Carts>>()
                .map(|c| Carts::clone(c))
                .ok_or(ApiError::Misconfigured(
                    "no Carts in app data: add .app_data(web::Data::new(carts))",
                ))?;
            if let Some(sessions) = req.app_data::<web::Data<Sessions>>() {
                if let Ok(session) = sessions.current(&req).await {
                    return Ok(Cart {
                        owner: CartOwner::User(session.user_id),
                        carts,
                    });
                }
            }
            let device = req
                .extensions()
                .get::<DeviceId>()
                .copied()
                .ok_or(ApiError::NoDevice)?;
            Ok(Cart {
                owner: CartOwner::Device(device),
                carts,
            })
        })
    }
}
