use serde::{Deserialize, Serialize};

/// Currencies the client can charge in (ISO 4217 codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Currency {
    USD,
    EUR,
    INR,
}

/// A request to create a payment, as sent to `POST /payments`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PaymentRequest {
    /// Amount in the currency's minor unit (cents for USD).
    pub amount: u64,
    pub currency: Currency,
    pub customer_id: Option<String>,
    pub capture_method: CaptureMethod,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum CaptureMethod {
    Automatic,
    Manual,
}

#[derive(Debug, PartialEq)]
pub enum PaymentError {
    ZeroAmount,
    AmountTooLarge { max: u64 },
}

/// Largest amount accepted in one payment, in minor units.
pub const MAX_AMOUNT: u64 = 99_999_999;

/// Creates a payment request after validating the amount.
///
/// Returns `PaymentError::ZeroAmount` for a zero amount and
/// `PaymentError::AmountTooLarge` above `MAX_AMOUNT`.
pub fn create_payment(amount: u64, currency: Currency) -> Result<PaymentRequest, PaymentError> {
    if amount == 0 {
        return Err(PaymentError::ZeroAmount);
    }
    if amount > MAX_AMOUNT {
        return Err(PaymentError::AmountTooLarge { max: MAX_AMOUNT });
    }
    Ok(PaymentRequest {
        amount,
        currency,
        customer_id: None,
        capture_method: CaptureMethod::Automatic,
    })
}

impl PaymentRequest {
    /// Attaches a customer so the payment method can be saved for later.
    pub fn with_customer(mut self, customer_id: impl Into<String>) -> Self {
        self.customer_id = Some(customer_id.into());
        self
    }

    /// Switches to manual capture: the funds are authorised now and captured later.
    pub fn manual_capture(mut self) -> Self {
        self.capture_method = CaptureMethod::Manual;
        self
    }

    /// Converts the minor-unit amount to a display string such as `12.50`.
    pub fn display_amount(&self) -> String {
        format!("{}.{:02}", self.amount / 100, self.amount % 100)
    }
}
