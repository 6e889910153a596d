package ledger

import "fmt"

// FormatCents renders an amount of cents as a decimal string with two places,
// keeping the sign in front: -150 becomes "-1.50".
func FormatCents(cents int64) string {
	sign := ""
	if cents < 0 {
		sign = "-"
		cents = -cents
	}
	return fmt.Sprintf("%s%d.%02d", sign, cents/100, cents%100)
}

// Caller owns the result.
func Clone(l *Ledger) *Ledger {
	copy := New()
	for account, cents := range l.balances {
		copy.balances[account] = cents
	}
	return copy
}
