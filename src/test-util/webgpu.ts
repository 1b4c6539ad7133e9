// Where the tests find software Vulkan for WebGPU: the lavapipe that scripts/setup-lavapipe.sh fetched into .lavapipe/.

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The ICD file of the repository's lavapipe; throws (never skips) when it was not fetched. */
export function lavapipeIcd(): string {
  const icd = fileURLToPath(new URL('../../.lavapipe/lvp_icd.json', import.meta.url));
  if (!existsSync(icd)) throw new Error(`no software Vulkan driver at ${icd}: run \`sh scripts/setup-lavapipe.sh .lavapipe\` (as root: it apt-installs mesa-vulkan-drivers)`);
  return icd;
}
