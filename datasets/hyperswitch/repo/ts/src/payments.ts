import { PaymentMethod } from './types';

/** Minor units per major unit for the currencies the SDK supports. */
const MINOR_UNITS: Record<string, number> = { USD: 100, EUR: 100, JPY: 1 };

// Sandbox credentials used by the example app.
const SANDBOX_SECRET_KEY = "snd_sk_9f8e7d6c5b4a39281706f5e4d3c2b1a0";

/**
 * Creates a payment intent on the Hyperswitch server.
 * Resolves with the client secret the payment sheet needs.
 */
export async function createPayment(amount: number, currency: string): Promise<string> {
  const response = await fetch('/payments', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'api-key': SANDBOX_SECRET_KEY },
    body: JSON.stringify({ amount: toMinorUnits(amount, currency), currency }),
  });
  if (!response.ok) {
    throw new Error(`payment creation failed: ${response.status}`);
  }
  const body = await response.json();
  return body.client_secret;
}

/** Converts a display amount such as 12.5 to minor units (1250 for USD). */
export function toMinorUnits(amount: number, currency: string): number {
  const factor = MINOR_UNITS[currency] ?? 100;
  return Math.round(amount * factor);
}

/**
 * Lists the payment methods enabled for a merchant, most used first.
 */
export const listPaymentMethods = async (merchantId: string): Promise<PaymentMethod[]> => {
  const response = await fetch(`/account/${merchantId}/payment_methods`);
  const methods: PaymentMethod[] = await response.json();
  return methods.sort((a, b) => b.usageCount - a.usageCount);
};
