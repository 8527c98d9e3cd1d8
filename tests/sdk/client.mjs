// One cloud SDK, as an application in the pod would use it: configured by nothing but the
// environment and files the webhook injected (run_sdk.py sets up both, as the kubelet
// would). Usage: node client.mjs aws|azure|gcp
// Prints one JSON line: {"ok": true, "results": [...]} when every credential source
// returned credentials, else {"ok": false, "error": "..."}; exit status 0 or 1.
// Secrets are reported by length and a short prefix only, enough for run_sdk.py to check
// that they are the fake's answers.

const cloud = process.argv[2];

function summary(value) {
  return typeof value === "string" ? { prefix: value.slice(0, 12), length: value.length } : value;
}

async function aws() {
  const { fromTokenFile, fromNodeProviderChain } = await import("@aws-sdk/credential-providers");
  const results = [];
  // The provider the AWS documentation names for IRSA, then the default chain that an
  // SDK client with no explicit credentials uses.
  for (const [name, make] of [
    ["fromTokenFile", () => fromTokenFile()],
    ["fromNodeProviderChain", () => fromNodeProviderChain()],
  ]) {
    const creds = await make()();
    results.push({
      provider: name,
      accessKeyId: creds.accessKeyId,
      secretAccessKey: summary(creds.secretAccessKey),
      sessionToken: summary(creds.sessionToken),
      expiration: creds.expiration ? creds.expiration.toISOString() : null,
    });
  }
  return results;
}

async function azure() {
  const { WorkloadIdentityCredential, DefaultAzureCredential } = await import("@azure/identity");
  const scope = "https://management.azure.com/.default";
  const results = [];
  for (const [name, make] of [
    ["WorkloadIdentityCredential", () => new WorkloadIdentityCredential()],
    ["DefaultAzureCredential", () => new DefaultAzureCredential()],
  ]) {
    const token = await make().getToken(scope);
    if (!token) throw new Error(`${name}: getToken returned no token`);
    results.push({
      provider: name,
      token: summary(token.token),
      expiresOnTimestamp: token.expiresOnTimestamp,
    });
  }
  return results;
}

async function gcp() {
  const { GoogleAuth } = await import("google-auth-library");
  const auth = new GoogleAuth({ scopes: ["https://www.googleapis.com/auth/cloud-platform"] });
  // getClient() reads GOOGLE_APPLICATION_CREDENTIALS and resolves the project too: without
  // GOOGLE_CLOUD_PROJECT it asks Cloud Resource Manager, which the fake does not serve.
  const client = await auth.getClient();
  const { token } = await client.getAccessToken();
  if (!token) throw new Error("getAccessToken returned no token");
  const projectId = await auth.getProjectId();
  return [{ provider: "GoogleAuth", clientType: client.constructor.name, token: summary(token), projectId }];
}

const clouds = { aws, azure, gcp };
// A hung exchange must not hang the test: run_sdk.py also bounds the process.
const timer = setTimeout(() => {
  console.log(JSON.stringify({ ok: false, error: "client: no answer within 60 s" }));
  process.exit(1);
}, 60000);
try {
  if (!clouds[cloud]) throw new Error(`unknown cloud ${cloud}`);
  const results = await clouds[cloud]();
  console.log(JSON.stringify({ ok: true, uid: process.getuid(), results }));
  clearTimeout(timer);
} catch (err) {
  console.log(JSON.stringify({ ok: false, uid: process.getuid(), error: String(err && err.stack || err) }));
  clearTimeout(timer);
  process.exitCode = 1;
}
