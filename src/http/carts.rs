//! The `Cart` extractor: the signed-in user's cart, or the device's.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};

use crate::core::carts::{CartOwner, CartRecord, Carts};
use crate::http::error::ApiError;
use crate::http::sessions::{device_id, sessions_of};

/// The cart of the request: the signed-in user's when there is a valid session (and
/// `Sessions` is in app data), the device's otherwise. Needs [`Carts`] in app data
/// (`web::Data<Carts>`). It reads the request's one session check; lines the device added
/// while its login was in flight are merged into the user's cart here.
#[derive(Debug, Clone)]
pub struct Cart {
    /// Whose cart it is.
    pub owner: CartOwner,
    carts: Carts,
}

impl Cart {
    /// The cart's contents.
    pub async fn get(&self) -> Result<CartRecord, ApiError> {
        Ok(self.carts.get(&self.owner).await?)
    }
    /// See [`Carts::add`].
    pub async fn add(
        &self,
        sku: &str,
        quantity: u32,
        attributes: Option<&serde_json::Value>,
    ) -> Result<CartRecord, ApiError> {
        Ok(self
            .carts
            .add(&self.owner, sku, quantity, attributes)
            .await?)
    }
    /// See [`Carts::set_quantity`].
    pub async fn set_quantity(&self, sku: &str, quantity: u32) -> Result<CartRecord, ApiError> {
        Ok(self.carts.set_quantity(&self.owner, sku, quantity).await?)
    }
    /// See [`Carts::remove`].
    pub async fn remove(&self, sku: &str) -> Result<CartRecord, ApiError> {
        Ok(self.carts.remove(&self.owner, sku).await?)
    }
    /// See [`Carts::clear`].
    pub async fn clear(&self) -> Result<(), ApiError> {
        Ok(self.carts.clear(&self.owner).await?)
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
            let device = device_id(&req)?;
            if let Some(sessions) = sessions_of(&req) {
                if let Ok(session) = sessions.current(&req).await {
                    if carts
                        .get(&CartOwner::Device(device))
                        .await
                        .is_ok_and(|c| !c.lines.is_empty())
                    {
                        carts.merge_into_user(device, session.user_id()).await?;
                    }
                    return Ok(Cart {
                        owner: CartOwner::User(session.user_id().to_owned()),
                        carts,
                    });
                }
            }
            Ok(Cart {
                owner: CartOwner::Device(device),
                carts,
            })
        })
    }
}
