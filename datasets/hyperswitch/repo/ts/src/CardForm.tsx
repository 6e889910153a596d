import React, { useState } from 'react';

/** Luhn check for a card number typed with or without spaces. */
export function isValidCardNumber(input: string): boolean {
  const digits = input.replace(/\s+/g, '');
  if (!/^\d{12,19}$/.test(digits)) return false;
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

/** The card number field of the payment sheet; shows an error for invalid numbers. */
export function CardForm({ onSubmit }: { onSubmit: (card: string) => void }) {
  const [card, setCard] = useState('');
  const valid = isValidCardNumber(card);
  return (
    <form onSubmit={(e) => { e.preventDefault(); if (valid) onSubmit(card); }}>
      <input value={card} onChange={(e) => setCard(e.target.value)} placeholder="Card number" />
      {!valid && card.length > 0 && <span className="error">Invalid card number</span>}
      <button type="submit" disabled={!valid}>Pay</button>
    </form>
  );
}
