import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig, selectedModules } from './config.ts';

describe('config', () => {
  it('defaults to the embedded setup: PGlite in ./data, no Redis, no broker, port 8080', () => {
    const c = loadConfig({});
    assert.equal(c.port, 8080);
    assert.equal(c.databaseUrl, undefined);
    assert.equal(c.dataDir, './data');
    assert.equal(c.redisUrl, undefined);
    assert.equal(c.amqpUrl, undefined);
    assert.equal(c.minAgeDefault, 18);
    assert.equal(c.minAgeByCountry.GR, 21);
  });

  it('parses lists and per-country ages', () => {
    const c = loadConfig({ SUPPORTED_CURRENCIES: 'eur, usd', MIN_AGE_BY_COUNTRY: 'us:21,de=18', RESTRICTED_COUNTRIES: 'us,fr' });
    assert.deepEqual(c.supportedCurrencies, ['EUR', 'USD']);
    assert.deepEqual(c.minAgeByCountry, { US: 21, DE: 18 });
    assert.deepEqual(c.restrictedCountries, ['US', 'FR']);
  });

  const invalid: [string, string, RegExp][] = [
    ['PORT', 'abc', /PORT must be an integer/],
    ['PORT', '70000', /PORT must be between/],
    ['DATABASE_URL', 'mysql://x', /DATABASE_URL must use one of postgres:/],
    ['REDIS_URL', 'not a url', /REDIS_URL must be a URL/],
    ['LOG_LEVEL', 'loud', /LOG_LEVEL must be one of/],
    ['MIN_AGE_DEFAULT', '16', /MIN_AGE_DEFAULT must be between 18/],
    ['MIN_AGE_BY_COUNTRY', 'Greece:21', /MIN_AGE_BY_COUNTRY entries must look like/],
    ['SUPPORTED_CURRENCIES', 'EURO', /SUPPORTED_CURRENCIES has an invalid entry "EURO"/],
  ];
  for (const [name, value, message] of invalid) {
    it(`refuses ${name}=${value} naming the variable`, () => {
      assert.throws(
        () => loadConfig({ [name]: value }),
        (e: unknown) => e instanceof ConfigError && e.variable === name && message.test(e.message),
      );
    });
  }

  it('selects modules by name and refuses unknown ones', () => {
    assert.deepEqual(selectedModules(loadConfig({}), ['players', 'wallet']), ['players', 'wallet']);
    assert.deepEqual(selectedModules(loadConfig({ MODULES: 'wallet' }), ['players', 'wallet']), ['wallet']);
    assert.throws(() => selectedModules(loadConfig({ MODULES: 'casino' }), ['players']), /MODULES names an unknown module "casino"/);
  });
});
