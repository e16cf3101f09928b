// The published Threekit client, @threekit/rest-api 0.2.2, unchanged,
// against the real layercake binary (tests/threekit_client.rs starts it).
//
// The client only speaks https to its `host`, so this script puts a
// loopback TLS proxy in front of layercake (a throwaway certificate that
// the Rust test makes with openssl and hands to Node as
// NODE_EXTRA_CA_CERTS). The proxy sends X-Forwarded-Proto/-Host, and
// layercake is configured to trust it, so the absolute URLs it answers
// point back through the proxy.
//
// Every call's answer is parsed with the client's own exported zod
// schema, and every URL the client builds or an answer carries is
// fetched and must answer 200 with the right bytes. Prints one line of
// counts; exits 1 when anything failed, naming each failure.
//
// Env: LC_UPSTREAM (http://127.0.0.1:port), LC_TOKEN, LC_ORG, LC_ASSET,
// LC_TLS_KEY, LC_TLS_CERT (files).

import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import * as TK from '@threekit/rest-api';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const upstream = new URL(env('LC_UPSTREAM'));
const token = env('LC_TOKEN');
const orgId = env('LC_ORG');
const assetId = env('LC_ASSET');

// --- the TLS endpoint -------------------------------------------------------
const proxy = https.createServer(
  { key: fs.readFileSync(env('LC_TLS_KEY')), cert: fs.readFileSync(env('LC_TLS_CERT')) },
  (req, res) => {
    const up = http.request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: {
          ...req.headers,
          'x-forwarded-proto': 'https',
          'x-forwarded-host': req.headers.host,
        },
      },
      (r) => {
        res.writeHead(r.statusCode, r.headers);
        r.pipe(res);
      },
    );
    up.on('error', (e) => {
      res.writeHead(502);
      res.end(String(e));
    });
    req.pipe(up);
  },
);
await new Promise((ok) => proxy.listen(0, '127.0.0.1', ok));
const host = `127.0.0.1:${proxy.address().port}`;

// --- bookkeeping ------------------------------------------------------------
const counts = { calls: 0, schemaChecks: 0, fetches: 0 };
const failures = [];
const fail = (what, why) => {
  failures.push(`${what}: ${why}`);
  console.error(`FAIL ${what}: ${why}`);
};
const short = (v) => {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s && s.length > 400 ? `${s.slice(0, 400)}...` : s;
};

/** One client call: the status it must answer, and the schema its data must pass. */
async function call(what, promise, { status = 200, schema } = {}) {
  counts.calls += 1;
  let res;
  try {
    res = await promise;
  } catch (e) {
    fail(what, `threw ${e && e.message}`);
    return undefined;
  }
  if (!res) {
    fail(what, 'no response (connection failed)');
    return undefined;
  }
  const statuses = Array.isArray(status) ? status : [status];
  if (!statuses.includes(res.status)) {
    const body = Buffer.isBuffer(res.data) ? `<${res.data.length} bytes>` : short(res.data);
    fail(what, `status ${res.status}, expected ${statuses.join('|')}: ${body}`);
    return undefined;
  }
  if (schema) check(what, schema, res.data);
  return res;
}

/** Parses `data` with a client schema; a failure lists zod's issues. */
function check(what, schema, data) {
  counts.schemaChecks += 1;
  const r = schema.safeParse(data);
  if (!r.success) {
    const issues = r.error.issues
      .slice(0, 8)
      .map((i) => `${i.path.join('.')}: ${i.message}`)
      .join('; ');
    fail(`${what} (schema)`, `${issues} in ${short(data)}`);
  }
  return r.success;
}

/**
 * Fetches a URL (through the TLS endpoint) and returns its bytes. URLs the
 * client builds carry the token (bearer_token); URLs in answers (a layer's
 * `url`, a Files service URL) get it as a header, as any API caller sends it.
 */
async function fetchBytes(what, url, { type, withToken = false } = {}) {
  counts.fetches += 1;
  try {
    const r = await fetch(url, withToken ? { headers: { authorization: `Bearer ${token}` } } : {});
    const body = Buffer.from(await r.arrayBuffer());
    if (r.status !== 200) {
      fail(what, `GET ${url}: status ${r.status}: ${short(body.toString())}`);
      return undefined;
    }
    if (type && !(r.headers.get('content-type') || '').startsWith(type)) {
      fail(what, `GET ${url}: content-type ${r.headers.get('content-type')}, expected ${type}`);
    }
    return body;
  } catch (e) {
    fail(what, `GET ${url}: ${e.message}${e.cause ? ` (${e.cause.message})` : ''}`);
    return undefined;
  }
}

const MAGIC = {
  png: [0x89, 0x50, 0x4e, 0x47],
  jpg: [0xff, 0xd8, 0xff],
  webp: [0x52, 0x49, 0x46, 0x46],
};
const isFormat = (buf, f) => Buffer.isBuffer(buf) && MAGIC[f].every((b, i) => buf[i] === b);
/** JSON with sorted keys: equal values, whatever the key order. */
const canonical = (v) =>
  JSON.stringify(v, (_, x) =>
    x && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(Object.keys(x).sort().map((k) => [k, x[k]]))
      : x,
  );
const same = (what, a, b) => {
  if (!a || !b || !Buffer.from(a).equals(Buffer.from(b))) {
    fail(what, `bytes differ (${a && a.length} vs ${b && b.length})`);
  }
};

// --- the client -------------------------------------------------------------
const client = new TK.ThreekitClient({ privateToken: token, orgId, host });
const configuration = { Body: 'Navy', Pillows: 'Teal', Legs: 'Walnut Block', Skirt: true };

// Fast compositor: every format, every fit mode, the URL it builds.
await call('fastCompositor.healthcheck', client.fastCompositor.healthcheck());
const images = {};
for (const format of Object.values(TK.FastCompositorImageExtension)) {
  const props = { assetId, configuration, width: 320, format };
  const res = await call(`fastCompositor.request ${format}`, client.fastCompositor.request(props, {}, 'arraybuffer'));
  if (res) {
    if (!isFormat(res.data, format)) fail(`fastCompositor.request ${format}`, 'not that format');
    images[format] = res.data;
  }
  const url = client.fastCompositor.requestUrl(props);
  same(`fastCompositor.requestUrl ${format}`, await fetchBytes(`fastCompositor.requestUrl ${format}`, url), images[format]);
}
for (const imageFitMode of Object.values(TK.FastCompositeImageFitMode)) {
  const props = { assetId, configuration, width: 300, height: 200, format: 'png', imageFitMode };
  const res = await call(`fastCompositor.request ${imageFitMode}`, client.fastCompositor.request(props, {}, 'arraybuffer'));
  if (res && !isFormat(res.data, 'png')) fail(`fastCompositor.request ${imageFitMode}`, 'not a PNG');
}
// Crop, cache parameters and skipResolveTags, as the client sends them.
await call(
  'fastCompositor.request crop+caching',
  client.fastCompositor.request(
    { assetId, configuration, cropX: 100, cropY: 100, cropWidth: 800, cropHeight: 600, width: 400, format: 'webp', skipResolveTags: true },
    { cacheScope: 'plp', cacheMaxAge: 600 },
    'arraybuffer',
  ),
);
// Bad input is a 4xx the client sees, not a 5xx.
await call('fastCompositor.request unknown asset', client.fastCompositor.request({ assetId: '6f1c7d2e-8a4b-4c3d-9e5f-0a1b2c3d4e5f' }, {}, 'arraybuffer'), { status: 404 });

// Layers: the renders above made them.
const listing = await call('layers.get', client.layers.get({ assetId }), { schema: TK.LayerListing });
const layers = listing ? listing.data.layers : [];
if (layers.length < 5) fail('layers.get', `${layers.length} layers after a render of 4 formats`);
const page2 = await call('layers.get page 2', client.layers.get({ assetId, perPage: 2, page: 2 }), { schema: TK.LayerListing });
if (page2 && (page2.data.layers.length !== 2 || page2.data.page !== 2 || page2.data.perPage !== 2)) {
  fail('layers.get page 2', `page ${page2.data.page}, perPage ${page2.data.perPage}, ${page2.data.layers.length} layers`);
}
const body = layers.find((l) => l.assetLayerConfiguration && l.assetLayerConfiguration.Body === 'Navy');
if (!body) fail('layers.get', 'no Body layer for Navy');
const filters = body && {
  assetId,
  assetLayer: body.assetLayer,
  assetLayerConfiguration: body.assetLayerConfiguration,
  stageConfiguration: body.stageConfiguration,
};
if (body) {
  const filtered = await call('layers.get filtered', client.layers.get(filters), { schema: TK.LayerListing });
  if (filtered && !filtered.data.layers.every((l) => l.assetLayer === body.assetLayer)) fail('layers.get filtered', 'another layer came back');
  const byJob = await call('layers.get jobId', client.layers.get({ jobId: body.jobId }), { schema: TK.LayerListing });
  if (byJob && !byJob.data.layers.some((l) => l.id === body.id)) fail('layers.get jobId', 'the job\'s layer is missing');

  const one = await call('layers.getLayer', client.layers.getLayer(filters), { schema: TK.LayerWithFile });
  const png = one && (await fetchBytes('layers.getLayer url', one.data.url, { type: 'image/png', withToken: true }));
  if (png && !isFormat(png, 'png')) fail('layers.getLayer url', 'not a PNG');
  const byId = await call('layers.getById', client.layers.getById(body.id), { schema: TK.LayerWithFile });
  if (byId && byId.data.id !== body.id) fail('layers.getById', 'another layer');
  const asUrl = await call('layers.getUrl', client.layers.getUrl(filters), { schema: TK.LayerAsURL });
  same('layers.getUrl url', asUrl && (await fetchBytes('layers.getUrl url', asUrl.data.url, { withToken: true })), png);
  const file = await call('layers.downloadFile', client.layers.downloadFile(filters));
  if (file && !(file.headers['content-type'] || '').startsWith('image/png')) fail('layers.downloadFile', `content-type ${file.headers['content-type']}`);
  same('layers.getDownloadUrl', await fetchBytes('layers.getDownloadUrl', client.layers.getDownloadUrl(filters)), png);
}
await call('layers.getById unknown', client.layers.getById('6f1c7d2e-8a4b-4c3d-9e5f-0a1b2c3d4e5f'), { status: 404 });

// Files.
await call('files.healthcheck', client.files.healthcheck());
const bytes = images.png || Buffer.from('not an image, just bytes');
const uploaded = await call(
  'files.upload',
  client.files.upload({ file: new File([bytes], 'layer.png', { type: 'image/png' }) }),
  { status: [201], schema: TK.FileListing }, // the platform's Files service answers 201
);
const fileId = uploaded && uploaded.data.files && uploaded.data.files[0] && uploaded.data.files[0].id;
if (fileId) {
  const f = await call('files.getById', client.files.getById(fileId), { schema: TK.File });
  if (f && f.data.size !== bytes.length) fail('files.getById', `size ${f.data.size}, uploaded ${bytes.length}`);
  const down = await call('files.downloadById', client.files.downloadById(fileId, 'arraybuffer'));
  same('files.downloadById', down && down.data, bytes);
  same('files.getDownloadUrlById', await fetchBytes('files.getDownloadUrlById', client.files.getDownloadUrlById(fileId)), bytes);
}

// Saved configurations.
await call('savedConfigurations.healthcheck', client.savedConfigurations.healthcheck());
const saved = await call(
  'savedConfigurations.create',
  client.savedConfigurations.create({ productId: assetId, productVersion: '1', variant: configuration, metadata: { campaign: 'winter', rank: 3 } }),
  { status: [200], schema: TK.SavedConfiguration }, // as the client's own tests expect
);
if (saved) {
  const { id, shortId } = saved.data;
  await call('savedConfigurations.get', client.savedConfigurations.get(), { schema: TK.SavedConfigurationListing });
  const mine = await call('savedConfigurations.get productId', client.savedConfigurations.get({ productId: assetId }, { perPage: 5 }), { schema: TK.SavedConfigurationListing });
  if (mine && !mine.data.configurations.some((c) => c.id === id)) fail('savedConfigurations.get productId', 'the saved one is missing');
  const a = await call('savedConfigurations.getById id', client.savedConfigurations.getById(id), { schema: TK.SavedConfiguration });
  const b = await call('savedConfigurations.getById shortId', client.savedConfigurations.getById(shortId), { schema: TK.SavedConfiguration });
  if (a && b && a.data.id !== b.data.id) fail('savedConfigurations.getById', 'id and shortId name different records');
  if (a && canonical(a.data.variant) !== canonical(configuration)) fail('savedConfigurations.getById', `variant ${short(a.data.variant)}`);
}

// Webhooks (the client sends orgId in the body).
await call('webhooks.healthcheck', client.webhooks.healthcheck());
const hook = await call(
  'webhooks.create',
  client.webhooks.create({ topic: 'job.stopped', address: 'http://127.0.0.1:9/threekit', filter: { status: ['success', 'failed'] } }),
  { status: [200], schema: TK.WebhookResponse }, // a create answers 200, as saved configurations do
);
const other = new TK.ThreekitClient({ privateToken: token, orgId: '6f1c7d2e-8a4b-4c3d-9e5f-0a1b2c3d4e5f', host });
await call('webhooks.create another org', other.webhooks.create({ topic: 'job.stopped', address: 'http://127.0.0.1:9/x', filter: { status: [] } }), { status: 403 });
if (hook) {
  const id = hook.data.webhook.id;
  await call('webhooks.get', client.webhooks.get(), { schema: TK.WebhookListing });
  await call('webhooks.getById', client.webhooks.getById(id), { schema: TK.WebhookResponse });
  // The client types this answer as WebhookListing, unlike every other
  // answer of one webhook: layercake's parses as both (see README).
  const upd = await call('webhooks.updateById', client.webhooks.updateById(id, { address: 'http://127.0.0.1:9/v2' }), { schema: TK.WebhookListing });
  if (upd) check('webhooks.updateById', TK.WebhookResponse, upd.data);
  if (upd && upd.data.webhook.address !== 'http://127.0.0.1:9/v2') fail('webhooks.updateById', 'address unchanged');
  const del = await call('webhooks.deleteById', client.webhooks.deleteById(id), { schema: TK.WebhookResponse });
  if (del && !del.data.webhook.deletedAt) fail('webhooks.deleteById', 'no deletedAt');
  const res = await call('webhooks.restoreById', client.webhooks.restoreById(id), { schema: TK.WebhookResponse });
  if (res && res.data.webhook.deletedAt) fail('webhooks.restoreById', 'still deleted');
}

// Jobs, tasks, runs: the renders above made them.
const jobs = await call('jobs.get', client.jobs.get(), { schema: TK.JobListing });
const stopped = await call('jobs.get stopped', client.jobs.get({ status: 'stopped' }, { perPage: 10 }), { schema: TK.JobListing });
const job = (stopped && stopped.data.jobs.find((j) => (j.runs || []).length > 0)) || (jobs && jobs.data.jobs[0]);
if (!job) fail('jobs.get', 'no job after renders');
if (job) {
  const j = await call('jobs.getById', client.jobs.getById(job.id), { schema: TK.Job });
  if (j) {
    const files = await TK.getJobOutputFiles(j.data);
    counts.calls += 1;
    if (files.length === 0) fail('getJobOutputFiles', 'no output files');
    for (const f of files) check('getJobOutputFiles file', TK.File, f);
    if (files[0]) {
      const out = await call('files.downloadById job output', client.files.downloadById(files[0].id, 'arraybuffer'));
      if (out && out.data.length !== files[0].size) fail('job output', `${out.data.length} bytes, file says ${files[0].size}`);
    }
  }
  const tasks = await call('jobs.tasks.get', client.jobs.tasks.get({ jobId: job.id }), { schema: TK.JobTaskListing });
  const task = tasks && tasks.data.tasks[0];
  if (!task) fail('jobs.tasks.get', 'no task of the job');
  await call('jobs.tasks.get runStatus', client.jobs.tasks.get({ runStatus: 'stopped' }, { perPage: 3 }), { schema: TK.JobTaskListing });
  if (task) {
    await call('jobs.tasks.getById', client.jobs.tasks.getById(task.id), { schema: TK.JobTask });
    const runs = await call('jobs.runs.get taskId', client.jobs.runs.get({ taskId: task.id }), { schema: TK.JobRunListing });
    const run = runs && runs.data.runs[0];
    if (!run) fail('jobs.runs.get taskId', 'no run of the task');
    if (run) await call('jobs.runs.getById', client.jobs.runs.getById(run.id), { schema: TK.JobRun });
  }
  await call('jobs.runs.get jobId', client.jobs.runs.get({ jobId: job.id }, { perPage: 5 }), { schema: TK.JobRunListing });
}
await call('jobs.getById unknown', client.jobs.getById('6f1c7d2e-8a4b-4c3d-9e5f-0a1b2c3d4e5f'), { status: 404 });

proxy.close();
console.log(
  `threekit-client: ${counts.calls} calls, ${counts.schemaChecks} schema checks, ${counts.fetches} URL fetches, ${failures.length} failures`,
);
process.exit(failures.length === 0 ? 0 : 1);
