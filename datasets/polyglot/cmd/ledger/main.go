// Command ledger posts a demo transaction and prints the balances.
package main

import (
	"fmt"
	"os"

	"example.com/polyglot/internal/ledger"
)

// main posts one balanced transfer between two accounts and prints both balances,
// exiting with status 1 if the ledger refuses the transaction.
func main() {
	l := ledger.New()
	err := l.Post(
		ledger.Entry{Account: "cash", Amount: -2500},
		ledger.Entry{Account: "savings", Amount: 2500},
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, account := range l.Accounts() {
		fmt.Println(account, ledger.FormatCents(l.Balance(account)))
	}
}
