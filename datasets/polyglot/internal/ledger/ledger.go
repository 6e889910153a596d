// Package ledger keeps double-entry accounts in integer cents.
package ledger

import (
	"errors"
	"sort"
)

// ErrUnbalanced is returned when the debits of a transaction do not equal its credits.
var ErrUnbalanced = errors.New("ledger: transaction does not balance")

// Entry moves Amount cents into (positive) or out of (negative) one account.
type Entry struct {
	Account string
	Amount  int64
}

// Ledger holds the balance of every account it has seen, in cents.
type Ledger struct {
	balances map[string]int64
}

// New returns an empty ledger whose accounts all start at zero cents.
func New() *Ledger {
	return &Ledger{balances: make(map[string]int64)}
}

// Post applies every entry of a transaction at once, or none of them when the
// entries do not sum to zero, in which case it returns ErrUnbalanced.
func (l *Ledger) Post(entries ...Entry) error {
	var sum int64
	for _, e := range entries {
		sum += e.Amount
	}
	if sum != 0 {
		return ErrUnbalanced
	}
	for _, e := range entries {
		l.balances[e.Account] += e.Amount
	}
	return nil
}

// Balance returns the balance of an account in cents, zero for an account never posted to.
func (l *Ledger) Balance(account string) int64 {
	return l.balances[account]
}

// Accounts lists the names of every account with a non-zero balance, sorted.
func (l *Ledger) Accounts() []string {
	names := make([]string, 0, len(l.balances))
	for name, cents := range l.balances {
		if cents != 0 {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

func (l *Ledger) reset() {
	l.balances = make(map[string]int64)
}
