// Validate prometheus-operator resources against their CRD schemas: reads a JSON list of manifests on stdin,
// prints one line per invalid one and exits 1 if any. The validators are the ones @kubernetes-models generates
// from prometheus-operator's published CRDs (a pinned npm package: no network at check time).
// Run from the folder where `npm ci` installed package-lock.json (scripts/install-deploy-tools.sh does).
import { readFileSync } from "node:fs";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";

const models = { PodMonitor, PrometheusRule, ServiceMonitor };
let failed = 0;
for (const doc of JSON.parse(readFileSync(0, "utf8"))) {
  const name = `${doc.kind}/${doc.metadata?.name}`;
  const Model = doc.apiVersion === "monitoring.coreos.com/v1" ? models[doc.kind] : undefined;
  if (!Model) {
    console.log(`${name}: no schema for ${doc.apiVersion} ${doc.kind}`);
    failed++;
    continue;
  }
  try {
    new Model(doc).validate();
    console.log(`${name}: valid`);
  } catch (error) {
    console.log(`${name}: ${error.message}`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
