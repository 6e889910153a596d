/** A payment method a customer can pay with. */
export interface PaymentMethod {
  type: 'card' | 'wallet' | 'bank_transfer';
  name: string;
  usageCount: number;
}
