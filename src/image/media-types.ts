/** Media types of the OCI image spec, Docker schema 2 and ocicrypt, and the rules that relate them. */

export const MediaType = {
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  OciConfig: 'application/vnd.oci.image.config.v1+json',
  OciLayer: 'application/vnd.oci.image.layer.v1.tar',
  OciLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  OciLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  OciLayerNonDistributable: 'application/vnd.oci.image.layer.nondistributable.v1.tar',
  OciLayerNonDistributableGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  OciLayerNonDistributableZstd: 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  OciLayoutHeader: 'application/vnd.oci.layout.header.v1+json',
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DockerConfig: 'application/vnd.docker.container.image.v1+json',
  DockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  DockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  DockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  DockerForeignLayer: 'application/vnd.docker.image.rootfs.foreign.diff.tar',
} as const;

const ENCRYPTED_SUFFIX = '+encrypted';

export function isManifestMediaType(mt: string): boolean {
  return mt === MediaType.OciManifest || mt === MediaType.DockerManifest;
}

export function isIndexMediaType(mt: string): boolean {
  return mt === MediaType.OciIndex || mt === MediaType.DockerManifestList;
}

export function isEncryptedMediaType(mt: string): boolean {
  return mt.endsWith(ENCRYPTED_SUFFIX);
}

/**
 * Docker schema 2 layer types map onto OCI ones when a manifest is converted to OCI, which encryption needs
 * (only an OCI manifest can carry layer annotations through every tool).
 */
export function ociLayerMediaType(mt: string): string {
  switch (mt) {
    case MediaType.DockerLayerGzip:
      return MediaType.OciLayerGzip;
    case MediaType.DockerLayer:
      return MediaType.OciLayer;
    case MediaType.DockerForeignLayerGzip:
      return MediaType.OciLayerNonDistributableGzip;
    case MediaType.DockerForeignLayer:
      return MediaType.OciLayerNonDistributable;
    default:
      return mt;
  }
}

/** Plain OCI layer types that ocicrypt knows how to encrypt (after Docker types were mapped to OCI). */
const ENCRYPTABLE = new Set<string>([
  MediaType.OciLayer,
  MediaType.OciLayerGzip,
  MediaType.OciLayerZstd,
  MediaType.OciLayerNonDistributable,
  MediaType.OciLayerNonDistributableGzip,
  MediaType.OciLayerNonDistributableZstd,
]);

export function isEncryptableLayerMediaType(mt: string): boolean {
  return ENCRYPTABLE.has(ociLayerMediaType(mt));
}

/** ocicrypt appends `+encrypted` to the complete plain type, after any compression suffix. */
export function encryptedMediaType(mt: string): string {
  return ociLayerMediaType(mt) + ENCRYPTED_SUFFIX;
}

export function decryptedMediaType(mt: string): string {
  return isEncryptedMediaType(mt) ? mt.slice(0, -ENCRYPTED_SUFFIX.length) : mt;
}
