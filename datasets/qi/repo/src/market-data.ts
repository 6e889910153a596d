import { Result, success, failure, flatMap, create } from '@qi/base';
import type { Price } from './price';

/** Reads market data for a symbol; every method returns a Result, never throws. */
export interface MarketDataReader {
  getCurrentPrice(symbol: string): Promise<Result<Price>>;
}

/**
 * Fetches the latest price over HTTP and maps transport failures to NETWORK errors.
 */
export const fetchMarketData = async (symbol: string): Promise<Result<Price>> => {
  try {
    const response = await fetch(`/api/price/${symbol}`);
    if (!response.ok) {
      return failure(create('NETWORK_ERROR', 'Failed to fetch market data', 'NETWORK'));
    }
    return success(await response.json());
  } catch (error) {
    return failure(create('SYSTEM_ERROR', String(error), 'SYSTEM'));
  }
};

/** Computes the mid price from a bid and an ask, failing when the book is crossed. */
export const midPrice = (bid: Price, ask: Price): Result<number> =>
  flatMap(
    (spread: number) => (spread < 0
      ? failure(create('CROSSED_BOOK', 'Bid is above ask', 'VALIDATION'))
      : success((bid.price + ask.price) / 2)),
    success(ask.price - bid.price),
  );
