/**
 * What makes an image a pod-model image: `imagegate encrypt --plain-base BASE --paths …` records in its (single)
 * manifest the plaintext base the pod runs (pinned by digest), how many of the image's layers that base is, and the
 * image paths the encrypted layers above it write. The webhook reads them to swap the base in (pod-image.ts).
 */
export const POD_BASE_ANNOTATION = 'dev.imagegate.pod.base';
export const POD_BASE_LAYERS_ANNOTATION = 'dev.imagegate.pod.base-layers';
export const POD_PATHS_ANNOTATION = 'dev.imagegate.pod.paths';
