import { Result, success, failure, match, create } from '@qi/base';

/** A price quote for one instrument at one instant. */
export interface Price {
  symbol: string;
  price: number;
  size: number;
  timestamp: Date;
}

/**
 * Validates a market price: it must be a finite, positive number.
 * Returns a VALIDATION error instead of throwing.
 */
export const validatePrice = (price: number): Result<number> => {
  if (!Number.isFinite(price) || price <= 0) {
    return failure(create('INVALID_PRICE', 'Price must be positive', 'VALIDATION'));
  }
  return success(price);
};

/**
 * Creates a Price after validating every field.
 */
export const createPrice = (symbol: string, price: number, size: number, timestamp: Date): Result<Price> => {
  if (symbol.trim() === '') {
    return failure(create('INVALID_SYMBOL', 'Symbol must not be empty', 'VALIDATION'));
  }
  if (size < 0) {
    return failure(create('INVALID_SIZE', 'Size must not be negative', 'VALIDATION'));
  }
  return match(
    (valid) => success({ symbol, price: valid, size, timestamp }),
    (error) => failure(error),
    validatePrice(price),
  );
};
