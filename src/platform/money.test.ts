import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { exponentOf, formatAmount, MAX_MINOR, MoneyFormatError, parseAmount } from './money.ts';

describe('money', () => {
  it('knows ISO 4217 exponents', () => {
    assert.equal(exponentOf('EUR'), 2);
    assert.equal(exponentOf('JPY'), 0);
    assert.equal(exponentOf('BHD'), 3);
    assert.throws(() => exponentOf('XXX'), MoneyFormatError);
  });

  it('parses decimal strings into minor units exactly', () => {
    assert.equal(parseAmount('12.5', 'EUR'), 1250n);
    assert.equal(parseAmount('0.01', 'EUR'), 1n);
    assert.equal(parseAmount('1000', 'JPY'), 1000n);
    assert.equal(parseAmount('-1.234', 'KWD'), -1234n);
    assert.equal(parseAmount('92233720368547758.07', 'USD'), 9223372036854775807n);
    assert.throws(() => parseAmount('92233720368547758.08', 'USD'), /larger than the largest/);
  });

  it('refuses floats, exponents and too many decimals', () => {
    for (const bad of ['1.001', '1e3', '', '.5', '1.', '+1', '1,00', ' 1', 'NaN']) {
      assert.throws(() => parseAmount(bad, 'EUR'), MoneyFormatError, bad);
    }
    assert.throws(() => parseAmount('1.5', 'JPY'), /JPY has 0 decimal places/);
  });

  it('format and parse are inverse for every amount and currency exponent', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -MAX_MINOR, max: MAX_MINOR }), fc.constantFrom('EUR', 'JPY', 'KWD', 'CLF'), (minor, currency) => {
        assert.equal(parseAmount(formatAmount(minor, currency), currency), minor);
      }),
    );
  });
});
