/// A payment processor the router can send a payment to.
#[derive(Debug, Clone, PartialEq)]
pub struct Connector {
    pub name: String,
    pub success_rate: f64,
    pub enabled: bool,
}

/// Picks the enabled connector with the highest recent success rate.
///
/// Returns `None` when no connector is enabled.
pub fn pick_connector(connectors: &[Connector]) -> Option<&Connector> {
    connectors
        .iter()
        .filter(|c| c.enabled)
        .max_by(|a, b| a.success_rate.partial_cmp(&b.success_rate).unwrap())
}

/// Orders connectors for retries: best success rate first, disabled ones dropped.
pub fn retry_order(connectors: &[Connector]) -> Vec<&Connector> {
    let mut enabled: Vec<&Connector> = connectors.iter().filter(|c| c.enabled).collect();
    enabled.sort_by(|a, b| b.success_rate.partial_cmp(&a.success_rate).unwrap());
    enabled
}

pub fn connector_names(connectors: &[Connector]) -> Vec<String> {
    connectors.iter().map(|c| c.name.clone()).collect()
}
