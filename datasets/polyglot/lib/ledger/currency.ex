defmodule Ledger.Currency do
  @moduledoc """
  Amounts of money as integer cents, with parsing and formatting helpers that
  never go through floating point.
  """

  @doc """
  Parses a decimal string such as "12.30" or "-0.5" into integer cents.
  Returns `{:ok, cents}` or `:error` when the text is not a decimal amount.
  """
  @spec parse(String.t()) :: {:ok, integer} | :error
  def parse(text) do
    case Regex.run(~r/^(-?)(\d+)(?:\.(\d{1,2}))?$/, text) do
      [_, sign, units] -> {:ok, apply_sign(sign, String.to_integer(units) * 100)}
      [_, sign, units, cents] -> {:ok, apply_sign(sign, String.to_integer(units) * 100 + pad(cents))}
      nil -> :error
    end
  end

  @doc """
  Formats integer cents as a string with two decimal places, keeping the sign.
  """
  def format(cents) when cents < 0, do: "-" <> format(-cents)
  def format(cents), do: "#{div(cents, 100)}." <> String.pad_leading("#{rem(cents, 100)}", 2, "0")

  defp apply_sign("-", cents), do: -cents
  defp apply_sign(_, cents), do: cents

  defp pad(<<d>>), do: (d - ?0) * 10
  defp pad(digits), do: String.to_integer(digits)
end
