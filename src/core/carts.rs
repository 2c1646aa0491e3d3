//! Per-device shopping carts that follow the user after login.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use actix_device_store::CasOutcome;
use serde::{Deserialize, Serialize};

use crate::core::context::ServiceContext;
use crate::core::error::{Result, ServiceError};
use crate::core::keys::Key;
use crate::core::record::{decode, Change, Record};
use crate::identity::device_id::DeviceId;

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
            CartOwner::Device(id) => Key::DeviceCart(*id).encode(),
            CartOwner::User(user) => Key::UserCart(user.clone()).encode(),
        }
    }
}

const MAX_SKU: usize = 128;
const MAX_ATTRIBUTES: usize = 2048;

#[derive(Debug, Clone)]
struct Config {
    max_lines: usize,
    max_quantity: u32,
    idle_ttl: Duration,
}

/// Configuration of [`Carts`].
#[must_use]
#[derive(Debug)]
pub struct CartsBuilder {
    context: ServiceContext,
    config: Config,
}

impl CartsBuilder {
    /// At most this many lines per cart (default 100).
    pub fn max_lines(mut self, n: usize) -> Self {
        self.config.max_lines = n;
        self
    }
    /// At most this quantity per line (default 999).
    pub fn max_quantity(mut self, n: u32) -> Self {
        self.config.max_quantity = n;
        self
    }
    /// A cart untouched this long expires (default 30 days).
    pub fn idle_ttl(mut self, ttl: Duration) -> Self {
        self.config.idle_ttl = ttl;
        self
    }
    /// The service.
    pub fn build(self) -> Carts {
        Carts {
            inner: Arc::new(CartsInner {
                context: self.context,
                config: self.config,
            }),
        }
    }
}

struct CartsInner {
    context: ServiceContext,
    config: Config,
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
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Carts {
    /// Carts with the defaults.
    pub fn new(context: &ServiceContext) -> Self {
        Self::builder(context).build()
    }

    /// A builder.
    pub fn builder(context: &ServiceContext) -> CartsBuilder {
        CartsBuilder {
            context: context.clone(),
            config: Config {
                max_lines: 100,
                max_quantity: 999,
                idle_ttl: Duration::from_secs(30 * 24 * 3600),
            },
        }
    }

    /// The cart (empty if there is none or it expired).
    pub async fn get(&self, owner: &CartOwner) -> Result<CartRecord> {
        Ok(self
            .inner
            .context
            .records()
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
    ) -> Result<CartRecord> {
        check_sku(sku)?;
        if quantity == 0 {
            return Err(ServiceError::Invalid(
                "quantity must be at least 1".to_owned(),
            ));
        }
        let attributes = attributes.map(serde_json::Value::to_string);
        if attributes
            .as_ref()
            .is_some_and(|a| a.len() > MAX_ATTRIBUTES)
        {
            return Err(ServiceError::Invalid(format!(
                "attributes are at most {MAX_ATTRIBUTES} bytes of JSON"
            )));
        }
        let (max_lines, max_quantity) =
            (self.inner.config.max_lines, self.inner.config.max_quantity);
        self.change(owner, |cart| {
            match cart.lines.iter_mut().find(|l| l.sku == sku) {
                Some(line) => {
                    let total = line.quantity.saturating_add(quantity);
                    if total > max_quantity {
                        return Err(ServiceError::CartLimit(format!(
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
                        return Err(ServiceError::CartLimit(format!(
                            "at most {max_lines} lines in a cart"
                        )));
                    }
                    if quantity > max_quantity {
                        return Err(ServiceError::CartLimit(format!(
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
    ) -> Result<CartRecord> {
        check_sku(sku)?;
        let max_quantity = self.inner.config.max_quantity;
        if quantity > max_quantity {
            return Err(ServiceError::CartLimit(format!(
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
                None => Err(ServiceError::NotInCart),
            }
        })
        .await
    }

    /// Removes the line of `sku`.
    pub async fn remove(&self, owner: &CartOwner, sku: &str) -> Result<CartRecord> {
        self.set_quantity(owner, sku, 0).await
    }

    /// Empties the cart.
    pub async fn clear(&self, owner: &CartOwner) -> Result<()> {
        self.inner.context.store().delete(&owner.key()).await?;
        Ok(())
    }

    /// Moves the device's cart into the user's (quantities added, each line capped at the
    /// per-line maximum, lines beyond the limit dropped). Called at login by the sessions
    /// when they were given these carts, and by the `Cart` extractor for lines a device
    /// added while its login was in flight.
    ///
    /// The device cart is taken with one compare-and-swap (a line added concurrently is
    /// either in what was taken or stays in the device cart for the next merge, never
    /// lost), then added to the user's cart in its own compare-and-swap loop; if that
    /// fails, the taken lines are put back.
    pub async fn merge_into_user(&self, device: DeviceId, user_id: &str) -> Result<CartRecord> {
        let to = CartOwner::User(user_id.to_owned());
        let Some(taken) = self.take(&CartOwner::Device(device)).await? else {
            return self.get(&to).await;
        };
        let (max_lines, max_quantity) =
            (self.inner.config.max_lines, self.inner.config.max_quantity);
        let merged = self
            .change(&to, |cart| {
                merge_lines(cart, &taken.lines, max_lines, max_quantity);
                Ok(())
            })
            .await;
        if merged.is_err() {
            let back = self
                .change(&CartOwner::Device(device), |cart| {
                    merge_lines(cart, &taken.lines, max_lines, max_quantity);
                    Ok(())
                })
                .await;
            if let Err(e) = back {
                tracing::error!(error = %e, "a device cart taken for a merge could not be put back");
            }
        }
        merged
    }

    /// Removes `owner`'s cart in one compare-and-swap and returns what it held.
    async fn take(&self, owner: &CartOwner) -> Result<Option<CartRecord>> {
        let key = owner.key();
        let store = self.inner.context.store();
        let mut raw = store.get(&key).await?;
        loop {
            let Some(bytes) = raw.as_deref() else {
                return Ok(None);
            };
            let cart: CartRecord = decode(&key, bytes)?;
            match store
                .compare_and_swap(&key, Some(bytes), None, None)
                .await?
            {
                CasOutcome::Swapped => return Ok(Some(cart).filter(|c| !c.lines.is_empty())),
                CasOutcome::Conflict { current } => raw = current,
            }
        }
    }

    async fn change(
        &self,
        owner: &CartOwner,
        mut edit: impl FnMut(&mut CartRecord) -> Result<()>,
    ) -> Result<CartRecord> {
        let now = self.inner.context.now();
        let record = self
            .inner
            .context
            .records()
            .update::<CartRecord, _>(&owner.key(), Some(self.inner.config.idle_ttl), |current| {
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

fn check_sku(sku: &str) -> Result<()> {
    if sku.is_empty() || sku.len() > MAX_SKU || sku.chars().any(char::is_control) {
        return Err(ServiceError::Invalid(format!(
            "a sku is 1 to {MAX_SKU} bytes without control characters"
        )));
    }
    Ok(())
}

/// Adds `lines` into `cart`: quantities summed and capped, new lines while there is room.
fn merge_lines(cart: &mut CartRecord, lines: &[CartLine], max_lines: usize, max_quantity: u32) {
    for line in lines {
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
}
