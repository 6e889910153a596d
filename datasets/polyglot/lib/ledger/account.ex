defmodule Ledger.Account do
  @moduledoc """
  An account holder's balance, kept in an Agent so that concurrent deposits and
  withdrawals are applied one at a time.
  """
  use Agent

  @doc """
  Starts an account process with an opening balance in cents (zero by default).
  """
  def start_link(opening \\ 0) do
    Agent.start_link(fn -> opening end)
  end

  @doc """
  Withdraws cents from the account unless the balance would go below zero, in
  which case the balance is left alone and `{:error, :insufficient_funds}` is returned.
  """
  def withdraw(account, cents) do
    Agent.get_and_update(account, fn balance ->
      if balance >= cents, do: {:ok, balance - cents}, else: {{:error, :insufficient_funds}, balance}
    end)
  end

  # TODO: overdraft limits
  def balance(account), do: Agent.get(account, & &1)
end
