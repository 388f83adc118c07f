//! The `CryptoService` gRPC service: `GetCoin`, `ListCoins` and
//! `StreamPrices` over the catalog and the price book.

use super::MarketState;
use super::catalog::CoinInfo;
use super::page::Page;
use super::stream::{PriceStream, SubscriberSlot};
use crate::proto::crypto_service_server::CryptoService;
use crate::proto::{
    Coin, GetCoinRequest, ListCoinsRequest, ListCoinsResponse, StreamPricesRequest,
};
use std::sync::Arc;
use tonic::{Request, Response, Status};
use tracing::{debug, warn};

/// The most symbols one `StreamPrices` request may name.
pub const MAX_STREAM_SYMBOLS: usize = 1000;

/// The gRPC service over a market.
pub struct MarketService {
    state: Arc<MarketState>,
}

impl MarketService {
    pub(crate) fn new(state: Arc<MarketState>) -> Self {
        Self { state }
    }

    fn coin(&self, i: usize, info: &CoinInfo) -> Coin {
        Coin {
            symbol: info.symbol.clone(),
            name: info.name.clone(),
            decimals: info.decimals,
            enabled: info.enabled,
            prices: self
                .state
                .book
                .latest(i)
                .quotes
                .iter()
                .map(|q| (*q.tick).clone())
                .collect(),
        }
    }

    /// Catalog positions of the requested symbols, in catalog order.
    fn resolve(&self, symbols: &[String]) -> Result<Vec<usize>, Status> {
        let catalog = &self.state.catalog;
        if symbols.len() > MAX_STREAM_SYMBOLS {
            return Err(Status::invalid_argument(format!(
                "{} symbols requested; at most {MAX_STREAM_SYMBOLS}",
                symbols.len()
            )));
        }
        let mut out = Vec::with_capacity(symbols.len());
        if symbols.is_empty() {
            out.extend((0..catalog.len()).filter(|i| catalog.coins()[*i].enabled));
            if out.is_empty() {
                return Err(Status::failed_precondition("no coin is enabled"));
            }
            return Ok(out);
        }
        for s in symbols {
            let (i, info) = catalog
                .find(s)
                .ok_or_else(|| Status::not_found(format!("coin {s:?} not found")))?;
            if !info.enabled {
                return Err(Status::failed_precondition(format!(
                    "coin {} is disabled",
                    info.symbol
                )));
            }
            out.push(i);
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }
}

#[tonic::async_trait]
impl CryptoService for MarketService {
    type StreamPricesStream = PriceStream;

    async fn get_coin(&self, request: Request<GetCoinRequest>) -> Result<Response<Coin>, Status> {
        let symbol = request.into_inner().symbol;
        if symbol.is_empty() {
            return Err(Status::invalid_argument("symbol is required"));
        }
        let (i, info) = self
            .state
            .catalog
            .find(&symbol)
            .ok_or_else(|| Status::not_found(format!("coin {symbol:?} not found")))?;
        Ok(Response::new(self.coin(i, info)))
    }

    async fn list_coins(
        &self,
        request: Request<ListCoinsRequest>,
    ) -> Result<Response<ListCoinsResponse>, Status> {
        let req = request.into_inner();
        let page = Page::parse(
            req.page_size,
            &req.page_token,
            &req.filter,
            req.enabled_only,
        )
        .inspect_err(|s| debug!(error = %s.message(), "ListCoins refused"))?;
        let all = self.state.catalog.coins();
        let total = all.iter().filter(|c| page.matches(c)).count();
        let from = match &page.after {
            Some(after) => all.partition_point(|c| c.symbol.as_str() <= after.as_str()),
            None => 0,
        };
        let mut hits = (from..all.len()).filter(|i| page.matches(&all[*i]));
        let coins: Vec<Coin> = hits
            .by_ref()
            .take(page.size)
            .map(|i| self.coin(i, &all[i]))
            .collect();
        let next_page_token = match (hits.next(), coins.last()) {
            (Some(_), Some(last)) => page.next_token(&last.symbol),
            _ => String::new(),
        };
        Ok(Response::new(ListCoinsResponse {
            coins,
            next_page_token,
            total_size: u32::try_from(total).unwrap_or(u32::MAX),
        }))
    }

    async fn stream_prices(
        &self,
        request: Request<StreamPricesRequest>,
    ) -> Result<Response<Self::StreamPricesStream>, Status> {
        let peer = request
            .remote_addr()
            .map_or_else(|| "unknown".into(), |a| a.to_string());
        let coins = self.resolve(&request.into_inner().symbols)?;
        let state = &self.state;
        let slot = SubscriberSlot::take(&state.open, state.limits.max_subscribers, &state.metrics)
            .ok_or_else(|| {
                warn!(%peer, max = state.limits.max_subscribers, "price subscriber refused");
                Status::resource_exhausted(format!(
                    "the server already has {} price subscribers",
                    state.limits.max_subscribers
                ))
            })?;
        let receivers = coins.iter().filter_map(|i| state.book.watch(*i)).collect();
        debug!(%peer, coins = coins.len(), "price subscriber");
        Ok(Response::new(PriceStream::new(
            receivers,
            state.stop.clone().cancelled_owned(),
            state.metrics.clone(),
            Some(slot),
        )))
    }
}
